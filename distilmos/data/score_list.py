"""Generic data preparation: any ``wav,score[,system]`` list to a data list CSV.

    python -m distilmos.data.score_list --list my_scores.txt --wav_dir /data/wavs --out data/mine/test.csv

The system of a row is its third field when present; otherwise, with ``--system_delim -``, the part of
the file stem before the first ``-`` (BVCC's convention); otherwise the stem itself (every utterance
its own system, so system-level metrics equal utterance-level ones).
"""

from __future__ import annotations

import argparse
import os
import sys

from distilmos.errors import reports_errors
from distilmos.fileio import unwritable

from .datalist import DataListError, looks_like_header, rows_from_score_list, validate, write_datalist


def system_rule(delim):
    """``sample_id -> system_id`` for an optional delimiter."""
    if delim:
        return lambda sample_id: sample_id.split(delim, 1)[0]
    return lambda sample_id: sample_id


@reports_errors(catch=DataListError)
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", required=True, help="text file: wav,score[,system] per line (comma or space)")
    parser.add_argument("--wav_dir", help="folder the wav names are relative to (default: the list's folder)")
    parser.add_argument("--out", required=True, help="output data list CSV")
    parser.add_argument("--system_delim", help="system id = stem before the first occurrence of this string")
    parser.add_argument("--header", choices=["auto", "yes", "no"], default="auto", help="first line is a header")
    parser.add_argument("--no_check_audio", action="store_true", help="skip opening every audio header")
    args = parser.parse_args(argv)

    wav_dir = args.wav_dir or os.path.dirname(os.path.abspath(args.list))
    out_dir = os.path.dirname(os.path.abspath(args.out))
    problem = "it is a folder" if os.path.isdir(args.out) else unwritable(out_dir)
    if problem:
        raise DataListError(f"{args.out}: cannot write the data list there ({problem}); give another --out")
    skip = looks_like_header(args.list) if args.header == "auto" else args.header == "yes"
    rows = rows_from_score_list(args.list, wav_dir, system_rule(args.system_delim), skip_header=skip)
    utts = validate(rows, args.list, check_audio=not args.no_check_audio)
    write_datalist(args.out, utts)
    print(f"{args.out}: {len(utts)} utterances, {len({u.system_id for u in utts})} systems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
