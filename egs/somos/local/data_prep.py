#!/usr/bin/env python
"""SOMOS to data list CSVs.

    python egs/somos/local/data_prep.py --somos_root /data/somos --out_dir data/somos

Reads ``<root>/audios/*.wav`` and ``<root>/training_files/split1/clean/{train,valid,test}_mos_list.txt``
(header ``utteranceId,mean``) and writes ``<out_dir>/{train,val,test}.csv``. The system of an utterance is
the last ``_`` field of its id: ``novel_2007_0098_015.wav`` is system ``015``. The paper's zero-shot
evaluation uses ``test.csv``. The reader is ``distilmos/corpora/somos.py`` (shared with the other
corpora's preparations).
"""

import argparse
import os
import sys

from distilmos.corpora import somos
from distilmos.corpora.common import write_splits
from distilmos.errors import ToolkitError


def somos_system(sample_id: str) -> str:
    """``novel_2007_0098_015`` -> ``015``."""
    return somos.system_of(sample_id)


def prepare(somos_root: str, out_dir: str, split_dir: str = somos.SPLIT_DIR, check_audio: bool = True):
    """Write the data lists; return ``{split: [Utterance]}``."""
    return write_splits(somos.read(os.path.abspath(somos_root), split_dir), out_dir, check_audio=check_audio)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--somos_root", required=True, help="folder that holds audios/ and training_files/")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--split_dir", default=somos.SPLIT_DIR, help="list folder under the root (clean or full split)")
    parser.add_argument("--no_check_audio", action="store_true", help="skip opening every audio header")
    args = parser.parse_args(argv)
    try:
        result = prepare(args.somos_root, args.out_dir, args.split_dir, check_audio=not args.no_check_audio)
    except ToolkitError as exc:  # bad input: one message, exit status 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, utts in result.items():
        n_sys = len({u.system_id for u in utts})
        print(f"{os.path.join(args.out_dir, split + '.csv')}: {len(utts)} utterances, {n_sys} systems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
