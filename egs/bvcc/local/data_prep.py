#!/usr/bin/env python
"""BVCC (VoiceMOS Challenge 2022 main track) to data list CSVs.

    python egs/bvcc/local/data_prep.py --bvcc_root /data/main/DATA/.. --out_dir data/bvcc

Reads ``<root>/DATA/wav/*.wav`` and ``<root>/DATA/sets/{train,val,test}_mos_list.txt`` (lines
``sys64e2f-utt9c183cd.wav,3.25``) and writes ``<out_dir>/{train,val,test}.csv``. The system of an
utterance is its file name before the first ``-``. When the listener files ``DATA/sets/TRAINSET``
(train) and ``DATA/sets/DEVSET`` (val) are present (lines ``sysID,uttID,rating,ignore,listenerinfo``),
the number of ratings per utterance is kept as an extra column ``n_ratings``. The reader is
``distilmos/corpora/bvcc.py`` (shared with the other corpora's preparations).
"""

import argparse
import os
import sys

from distilmos.corpora import bvcc
from distilmos.corpora.common import write_splits
from distilmos.datalist import DataListError


def bvcc_system(sample_id: str) -> str:
    """``sys64e2f-utt9c183cd`` -> ``sys64e2f``."""
    return bvcc.voicemos.system_of(sample_id)


def prepare(bvcc_root: str, out_dir: str, check_audio: bool = True):
    """Write the data lists; return ``{split: [Utterance]}``."""
    return write_splits(bvcc.read(os.path.abspath(bvcc_root)), out_dir, check_audio=check_audio)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bvcc_root", required=True, help="folder that holds DATA/")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--no_check_audio", action="store_true", help="skip opening every audio header")
    args = parser.parse_args(argv)
    try:
        result = prepare(args.bvcc_root, args.out_dir, check_audio=not args.no_check_audio)
    except DataListError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for split, utts in result.items():
        n_sys = len({u.system_id for u in utts})
        print(f"{os.path.join(args.out_dir, split + '.csv')}: {len(utts)} utterances, {n_sys} systems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
