#!/usr/bin/env python
"""BVCC (VoiceMOS Challenge 2022 main track) to data list CSVs.

    python egs/bvcc/local/data_prep.py --bvcc_root /data/main/DATA/.. --out_dir data/bvcc
    python egs/bvcc/local/data_prep.py --bvcc_root /data/main --out_dir data/bvcc_random811_seed0 \
        --split random811 --split_seed 0

Reads ``<root>/DATA/wav/*.wav`` and ``<root>/DATA/sets/{train,val,test}_mos_list.txt`` (lines
``sys64e2f-utt9c183cd.wav,3.25``) and writes ``<out_dir>/{train,val,test}.csv``. The system of an
utterance is its file name before the first ``-``. When the listener files ``DATA/sets/TRAINSET``
(train) and ``DATA/sets/DEVSET`` (val) are present (lines ``sysID,uttID,rating,ignore,listenerinfo``),
the number of ratings per utterance is kept as an extra column ``n_ratings``. The reader is
``distilmos/corpora/bvcc.py`` (shared with the other corpora's preparations).

``--split random811`` deals every labelled utterance of the three official lists at random into train, val
and test 8:1:1 (by utterance; seeded by ``--split_seed``; the same copy and seed give the same lists byte for
byte): the split SALF-MOS reports its BVCC numbers on. Without ``test_mos_list.txt``, a ``TESTSET`` whose
ratings are all the same (the placeholder of participants' copies) is refused unless ``--allow_constant_test``.
"""

import argparse
import os
import sys

from distilmos.corpora import bvcc
from distilmos.corpora.common import write_splits
from distilmos.errors import ToolkitError


def bvcc_system(sample_id: str) -> str:
    """``sys64e2f-utt9c183cd`` -> ``sys64e2f``."""
    return bvcc.voicemos.system_of(sample_id)


def prepare(
    bvcc_root: str,
    out_dir: str,
    check_audio: bool = True,
    split: str = "official",
    split_seed: int = 0,
    allow_constant_test: bool = False,
):
    """Write the data lists; return ``{split: [Utterance]}``."""
    splits = bvcc.read(
        os.path.abspath(bvcc_root), allow_constant_test=allow_constant_test, split=split, split_seed=split_seed
    )
    return write_splits(splits, out_dir, check_audio=check_audio)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bvcc_root", required=True, help="folder that holds DATA/")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--no_check_audio", action="store_true", help="skip opening every audio header")
    parser.add_argument(
        "--split",
        choices=bvcc.SPLIT_MODES,
        default="official",
        help="official: the challenge's lists; random811: every labelled utterance dealt 8:1:1",
    )
    parser.add_argument("--split_seed", type=int, default=0, help="seed of --split random811")
    parser.add_argument(
        "--allow_constant_test",
        action="store_true",
        help="accept a TESTSET whose ratings are all the same (a placeholder) as the test labels",
    )
    args = parser.parse_args(argv)
    try:
        result = prepare(
            args.bvcc_root,
            args.out_dir,
            check_audio=not args.no_check_audio,
            split=args.split,
            split_seed=args.split_seed,
            allow_constant_test=args.allow_constant_test,
        )
    except ToolkitError as exc:  # bad input: one message, exit status 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, utts in result.items():
        n_sys = len({u.system_id for u in utts})
        print(f"{os.path.join(args.out_dir, split + '.csv')}: {len(utts)} utterances, {n_sys} systems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
