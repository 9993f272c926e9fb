"""The VoiceMOS Challenge 2022 layout, shared by BVCC (main track) and BC19 (the OOD track).

    <root>/DATA/wav/<sysID>-<uttID>.wav
    <root>/DATA/sets/{train,val,test}_mos_list.txt     "sys64e2f-utt9c183cd.wav,3.25"
    <root>/DATA/sets/{TRAINSET,DEVSET,TESTSET}          listener ratings "sysID,uttID.wav,rating,ignore,listenerinfo"

The system of an utterance is its file name before the first ``-``. The test labels were released after
the challenge, as ``test_mos_list.txt`` and as the listener file ``TESTSET``: the list is read when it is
there, else the mean of the ``TESTSET`` ratings; a copy with neither has no test split (a warning says so).
"""

from __future__ import annotations

import os
import sys

from distilmos.datalist import Row

from .common import CorpusLayoutError, Splits, audio_file, average_ratings, read_lines, score_list, stem

LISTS = {"train": "train_mos_list.txt", "val": "val_mos_list.txt", "test": "test_mos_list.txt"}
LISTENER_FILES = {"train": "TRAINSET", "val": "DEVSET", "test": "TESTSET"}


def system_of(sample_id: str) -> str:
    """``sys64e2f-utt9c183cd`` -> ``sys64e2f``."""
    return sample_id.split("-", 1)[0]


def listener_rows(path: str, wav_dir: str):
    """Rows of the mean rating per utterance of a listener file, with the number of ratings."""
    ratings = [
        (fields[1], fields[2] if len(fields) > 2 else "", f"{path}:{n}")
        for n, fields in read_lines(path)
        if len(fields) >= 2
    ]
    rows = []
    for name, (mean, count, origin) in average_ratings(ratings).items():
        sample_id = stem(name)
        rows.append(
            Row(sample_id, system_of(sample_id), audio_file(wav_dir, name), mean, origin, {"n_ratings": str(count)})
        )
    return rows


def read(root: str, corpus: str) -> Splits:
    """``{split: (rows, source)}`` of a VoiceMOS 2022-layout folder ``root`` (which holds ``DATA/``)."""
    data = os.path.join(root, "DATA")
    if not os.path.isdir(data):
        raise CorpusLayoutError(
            f"{data}: not found; the {corpus} root must be the folder that holds DATA/wav and DATA/sets"
        )
    sets, wav_dir = os.path.join(data, "sets"), os.path.join(data, "wav")
    splits: Splits = {}
    for split, name in LISTS.items():
        list_path, listener_path = os.path.join(sets, name), os.path.join(sets, LISTENER_FILES[split])
        if os.path.isfile(list_path):
            rows = score_list(list_path, wav_dir, system_of)
            if os.path.isfile(listener_path):  # keep how many listeners each mean stands on
                counts = {r.sample_id: r.extra["n_ratings"] for r in listener_rows(listener_path, wav_dir)}
                for row in rows:
                    row.extra["n_ratings"] = counts.get(row.sample_id, "0")
            splits[split] = (rows, list_path)
        elif split == "test" and os.path.isfile(listener_path):
            splits[split] = (listener_rows(listener_path, wav_dir), listener_path)
        elif split == "test":
            print(
                f"warning: neither {list_path} nor {listener_path} found (test labels not in this copy); "
                f"no {corpus} test split",
                file=sys.stderr,
            )
        else:
            raise CorpusLayoutError(f"{list_path}: no such score file; the {corpus} root must hold DATA/sets/{name}")
    return splits
