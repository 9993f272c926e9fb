"""PSTN (English speech over public switched telephone networks; Mittag et al. 2020).

    <root>/pstn_train.csv        columns filename,MOS,std,95%CI,votes (one row per file)
    <root>/<filename>            the audio, path relative to <root>

``<root>`` is the ``pstn_train/`` folder. No system labels: every file is its own system. The sample id
is the file stem. No validation or test set ships: a seeded 10 % (seed 1337) becomes ``val``, which the
benchmark evaluates on. Splits train / val.

Fairly confident about ``pstn_train.csv`` and its ``filename``/``MOS`` columns (SHEET reads them so);
SHEET shortens the id to the stem before the first ``_``, which is kept whole here so that ids stay
unique whatever the names.
"""

from __future__ import annotations

import os

from .common import Splits, holdout, score_table, split_by

NAME = "pstn"
SPLITS = ("train", "val")
TEST_SPLITS = ("val",)
LAYOUT = "pstn_train.csv (filename,MOS,...) + the files it names"


def read(root: str) -> Splits:
    """``{split: (rows, source)}`` of a PSTN copy."""
    path = os.path.join(root, "pstn_train.csv")
    rows = score_table(path, root, "filename", "MOS")
    train, val = split_by(rows, holdout([r.sample_id for r in rows]))
    return {"train": (train, path), "val": (val, path)}
