"""The VoiceMOS Challenge 2022 layout, shared by BVCC (main track) and BC19 (the OOD track).

    <root>/DATA/wav/<sysID>-<uttID>.wav
    <root>/DATA/sets/{train,val,test}_mos_list.txt     "sys64e2f-utt9c183cd.wav,3.25"
    <root>/DATA/sets/{TRAINSET,DEVSET,TESTSET}          listener ratings "sysID,uttID.wav,rating,ignore,listenerinfo"

The system of an utterance is its file name before the first ``-``. The test labels were released after
the challenge, as ``test_mos_list.txt`` and as the listener file ``TESTSET``: the list is read when it is
there, else the mean of the ``TESTSET`` ratings; a copy with neither has no test split (a warning says so).

Copies handed to participants during the challenge hold a placeholder ``TESTSET``: every rating 1, every
listener ``nospeaker``. A listener file whose ratings are all the same is taken for such a placeholder: as
the test labels it is refused (a test split of constant scores has no correlation to measure) unless
``allow_constant_test`` is set, and no rating counts are taken from it.
"""

from __future__ import annotations

import os
import sys

from distilmos.data.datalist import Row

from .common import CorpusLayoutError, Splits, audio_file, average_ratings, read_lines, score_list, stem

LISTS = {"train": "train_mos_list.txt", "val": "val_mos_list.txt", "test": "test_mos_list.txt"}
LISTENER_FILES = {"train": "TRAINSET", "val": "DEVSET", "test": "TESTSET"}
RELEASE = "the VoiceMOS Challenge 2022 data release, Zenodo record 6572573"


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


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def constant_ratings(path: str) -> str | None:
    """What makes the listener file ``path`` a placeholder (every one of its ratings the same), else ``None``."""
    lines = [fields for _, fields in read_lines(path) if len(fields) > 2]
    ratings = {_number(fields[2]) for fields in lines}
    if len(lines) < 2 or len(ratings) != 1:
        return None
    listeners = {fields[4] for fields in lines if len(fields) > 4}
    who = f", every listener {listeners.pop()!r}" if len(listeners) == 1 else ""
    return f"all {len(lines)} ratings are {lines[0][2]}{who}"


def _placeholder_message(path: str, why: str, corpus: str) -> str:
    return (
        f"{path}: {why}: a placeholder copy of the test listener file (as handed to challenge participants), "
        f"not the {corpus} test labels. The real labels are DATA/sets/test_mos_list.txt and TESTSET of {RELEASE}; "
        "copy them into DATA/sets/"
    )


def read(root: str, corpus: str, allow_constant_test: bool = False) -> Splits:
    """``{split: (rows, source)}`` of a VoiceMOS 2022-layout folder ``root`` (which holds ``DATA/``).

    A placeholder ``TESTSET`` (every rating the same) as the only test labels is refused with a
    :class:`CorpusLayoutError` saying where the real labels are, unless ``allow_constant_test``."""
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
            placeholder = split == "test" and os.path.isfile(listener_path) and constant_ratings(listener_path)
            if placeholder:
                print(
                    f"warning: {_placeholder_message(listener_path, placeholder, corpus)}; no rating counts taken "
                    "from it",
                    file=sys.stderr,
                )
            elif os.path.isfile(listener_path):  # keep how many listeners each mean stands on
                counts = {r.sample_id: r.extra["n_ratings"] for r in listener_rows(listener_path, wav_dir)}
                for row in rows:
                    row.extra["n_ratings"] = counts.get(row.sample_id, "0")
            splits[split] = (rows, list_path)
        elif split == "test" and os.path.isfile(listener_path):
            placeholder = constant_ratings(listener_path)
            if placeholder:
                message = _placeholder_message(listener_path, placeholder, corpus)
                if not allow_constant_test:
                    raise CorpusLayoutError(
                        f"{message}. Refused as test labels: to prepare without a test split, remove it; to use it "
                        "anyway, pass --allow_constant_test to egs/bvcc/local/data_prep.py (--allow_constant_test true "
                        "to egs/bvcc/run.sh)"
                    )
                print(f"warning: {message}; used as the test labels anyway (--allow_constant_test)", file=sys.stderr)
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
