"""The NISQA Corpus (speech quality of telephone/VoIP-like transmission, simulated and live).

    <root>/NISQA_<SET>/NISQA_<SET>_file.csv      columns include con, filename_deg, mos (one row per file)
    <root>/NISQA_<SET>/deg/<filename_deg>         48 kHz (resampled when read)

``<root>`` is ``NISQA_Corpus/`` of the release. Sets and the splits they become:

    NISQA_TRAIN_SIM -> train       NISQA_VAL_SIM -> val
    NISQA_TRAIN_LIVE -> train_live NISQA_VAL_LIVE -> val_live      (read when present)
    NISQA_TEST_LIVETALK -> test_livetalk   NISQA_TEST_FOR -> test_for   NISQA_TEST_P501 -> test_p501

The system of a file is its condition (``con``); a row with an empty ``con`` is its own system.
Confident about the file names and the ``filename_deg``/``mos`` columns (the corpus's documentation and
SHEET read them so); less sure that every test set fills ``con`` (LIVETALK's conditions are talkers and
environments rather than simulated channels).
"""

from __future__ import annotations

import os

from distilmos.data.datalist import Row

from .common import CorpusLayoutError, Splits, audio_file, read_table, stem

NAME = "nisqa"
SETS = {
    "train": "NISQA_TRAIN_SIM",
    "val": "NISQA_VAL_SIM",
    "train_live": "NISQA_TRAIN_LIVE",
    "val_live": "NISQA_VAL_LIVE",
    "test_livetalk": "NISQA_TEST_LIVETALK",
    "test_for": "NISQA_TEST_FOR",
    "test_p501": "NISQA_TEST_P501",
}
OPTIONAL = ("train_live", "val_live")
SPLITS = tuple(SETS)
TEST_SPLITS = ("test_livetalk", "test_for", "test_p501")
LAYOUT = "NISQA_{TRAIN_SIM,VAL_SIM,TEST_LIVETALK,TEST_FOR,TEST_P501}/NISQA_*_file.csv + deg/*.wav"


def read_set(folder: str) -> tuple:
    """``(rows, source)`` of one NISQA set folder."""
    path = os.path.join(folder, f"{os.path.basename(folder)}_file.csv")
    rows = []
    for line_no, record in read_table(path, ("filename_deg", "mos")):
        sample_id = stem(record["filename_deg"])
        rows.append(
            Row(
                sample_id,
                record.get("con") or sample_id,
                audio_file(os.path.join(folder, "deg"), record["filename_deg"]),
                record["mos"],
                f"{path}:{line_no}",
            )
        )
    return rows, path


def read(root: str) -> Splits:
    """``{split: (rows, source)}`` of a NISQA Corpus copy."""
    splits: Splits = {}
    for split, set_name in SETS.items():
        folder = os.path.join(root, set_name)
        if split in OPTIONAL and not os.path.isdir(folder):
            continue
        if not os.path.isdir(folder):
            raise CorpusLayoutError(
                f"{folder}: not found; the NISQA root must be NISQA_Corpus/, holding "
                + ", ".join(s for k, s in SETS.items() if k not in OPTIONAL)
            )
        splits[split] = read_set(folder)
    return splits
