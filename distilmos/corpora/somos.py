"""SOMOS (English neural TTS, LJ Speech voice).

    <root>/audios/<domain>_<year>_<sentence>_<system>.wav
    <root>/training_files/split1/clean/{train,valid,test}_mos_list.txt     header "utteranceId,mean"

The system of an utterance is the last ``_`` field of its id (``novel_2007_0098_015`` -> ``015``).
Splits train / val (``valid``) / test of the clean split 1, the one the paper evaluates zero-shot.
Confident: the layout ``egs/somos/local/data_prep.py`` has always read.
"""

from __future__ import annotations

import os

from .common import CorpusLayoutError, Option, Splits, score_table

NAME = "somos"
SPLITS = ("train", "val", "test")
TEST_SPLITS = ("test",)
LAYOUT = "audios/*.wav, training_files/split1/clean/{train,valid,test}_mos_list.txt"
LISTS = {"train": "train_mos_list.txt", "val": "valid_mos_list.txt", "test": "test_mos_list.txt"}
SPLIT_DIR = "training_files/split1/clean"
#: ``read``'s options, offered as ``--<name>`` by ``distilmos-prep somos`` and ``egs/somos/local/data_prep.py``
OPTIONS = (Option("split_dir", SPLIT_DIR, "list folder under the root (clean or full split)"),)


def system_of(sample_id: str) -> str:
    """``novel_2007_0098_015`` -> ``015``."""
    return sample_id.rsplit("_", 1)[-1]


def read(root: str, split_dir: str = SPLIT_DIR) -> Splits:
    """``{split: (rows, source)}`` of a SOMOS copy."""
    lists, wav_dir = os.path.join(root, split_dir), os.path.join(root, "audios")
    if not os.path.isdir(lists):
        raise CorpusLayoutError(f"{lists}: not found; the SOMOS root must hold audios/ and {split_dir}/")
    splits: Splits = {}
    for split, name in LISTS.items():
        path = os.path.join(lists, name)
        splits[split] = (score_table(path, wav_dir, "utteranceId", "mean", system_of), path)
    return splits
