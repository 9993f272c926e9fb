"""SingMOS, as released for the VoiceMOS Challenge 2024 track 2 (singing voice synthesis and conversion).

    <root>/DATA/wav/<id>.wav                                  16 kHz
    <root>/DATA/sets/{train,val,eval}_mos_list.txt           "voicemos2024-track2-sys0001-utt0001,4.000000"

The list names utterance ids (``.wav`` is added); the system is the third ``-`` field (``sys0001``).
Splits train / val / test (``eval_mos_list.txt``, whose labels came after the challenge; a copy without
it has no test split). Fairly confident: this is the layout SHEET's SingMOS recipe reads. Later SingMOS
releases on Hugging Face (with ``info/`` metadata and other split files) are a different layout and are
not read here.
"""

from __future__ import annotations

import os
import sys

from .common import CorpusLayoutError, Splits, score_list

NAME = "singmos"
SPLITS = ("train", "val", "test")
TEST_SPLITS = ("test",)
LAYOUT = "DATA/wav/*.wav, DATA/sets/{train,val,eval}_mos_list.txt"
LISTS = {"train": "train_mos_list.txt", "val": "val_mos_list.txt", "test": "eval_mos_list.txt"}


def system_of(sample_id: str) -> str:
    """``voicemos2024-track2-sys0001-utt0001`` -> ``sys0001`` (the id itself when it has fewer fields)."""
    fields = sample_id.split("-")
    return fields[2] if len(fields) > 3 else sample_id


def read(root: str) -> Splits:
    """``{split: (rows, source)}`` of a SingMOS copy (root: the folder holding ``DATA/``)."""
    sets, wav_dir = os.path.join(root, "DATA", "sets"), os.path.join(root, "DATA", "wav")
    splits: Splits = {}
    for split, name in LISTS.items():
        path = os.path.join(sets, name)
        if split == "test" and not os.path.isfile(path):
            print(
                f"warning: {path} not found (evaluation labels not in this copy); no singmos test split",
                file=sys.stderr,
            )
            continue
        if not os.path.isfile(path):
            raise CorpusLayoutError(
                f"{path}: no such score file; the SingMOS root must hold DATA/wav and DATA/sets/{name}"
            )
        splits[split] = (score_list(path, wav_dir, system_of), path)
    return splits
