#!/usr/bin/env python
"""BVCC (VoiceMOS Challenge 2022 main track) to data list CSVs.

    python egs/bvcc/local/data_prep.py --bvcc_root /data/main/DATA/.. --out_dir data/bvcc

Reads ``<root>/DATA/wav/*.wav`` and ``<root>/DATA/sets/{train,val,test}_mos_list.txt`` (lines
``sys64e2f-utt9c183cd.wav,3.25``) and writes ``<out_dir>/{train,val,test}.csv``. The system of an
utterance is its file name before the first ``-``. When the listener files ``DATA/sets/TRAINSET``
(train) and ``DATA/sets/DEVSET`` (val) are present (lines ``sysID,uttID,rating,ignore,listenerinfo``),
the number of ratings per utterance is kept as an extra column ``n_ratings``.
"""
import argparse
import collections
import os
import sys

from distilmos.datalist import DataListError, rows_from_score_list, write_splits

SPLITS = {"train": "train_mos_list.txt", "val": "val_mos_list.txt", "test": "test_mos_list.txt"}
LISTENER_FILES = {"train": "TRAINSET", "val": "DEVSET"}


def bvcc_system(sample_id: str) -> str:
    """``sys64e2f-utt9c183cd`` -> ``sys64e2f``."""
    return sample_id.split("-", 1)[0]


def count_ratings(listener_file: str) -> collections.Counter:
    """Ratings per utterance id (file stem) in a BVCC listener file."""
    counts = collections.Counter()
    with open(listener_file, encoding="utf-8") as handle:
        for line in handle:
            fields = line.strip().split(",")
            if len(fields) >= 3:
                counts[os.path.splitext(fields[1])[0]] += 1
    return counts


def prepare(bvcc_root: str, out_dir: str, check_audio: bool = True):
    """Write the data lists; return ``{split: [Utterance]}``."""
    data = os.path.join(bvcc_root, "DATA")
    if not os.path.isdir(data):
        raise DataListError(f"{bvcc_root}: no DATA/ folder; --bvcc_root must be the folder that holds DATA/")
    sets, wav_dir = os.path.join(data, "sets"), os.path.join(data, "wav")
    splits = {}
    for split, list_name in SPLITS.items():
        list_path = os.path.join(sets, list_name)
        if split == "test" and not os.path.isfile(list_path):
            print(f"warning: {list_path} not found (test labels not released in this copy); no test.csv",
                  file=sys.stderr)
            continue
        rows = rows_from_score_list(list_path, wav_dir, bvcc_system)
        listener_file = os.path.join(sets, LISTENER_FILES.get(split, "-"))
        if os.path.isfile(listener_file):
            counts = count_ratings(listener_file)
            for row in rows:
                row.extra["n_ratings"] = str(counts.get(row.sample_id, 0))
        splits[split] = (rows, list_path)
    return write_splits(splits, out_dir, check_audio=check_audio)


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
