"""The Tencent corpus (Chinese speech with and without reverberation, from the ConferencingSpeech 2022
challenge's training data).

    <root>/withoutReverberationTrainDevMOS.csv     columns deg_wav,mos; deg_wav relative to <root> ("./...")
    <root>/withReverberationTrainDevMOS.csv

``<root>`` is the ``TencentCorups/`` folder of the release (sic). There are no system labels: every
utterance is its own system (system-level metrics then equal utterance-level ones). The sample id is
the file's path under the root without extension, ``/`` replaced by ``_``. No validation or test set
ships: a seeded 10 % of each list (seed 1337) becomes ``val``, which the benchmark evaluates on.
Splits train / val.

Fairly confident (SHEET reads these two lists so); unsure of the folder names inside the root, which
are only ever taken from ``deg_wav``.
"""

from __future__ import annotations

import os

from distilmos.data.datalist import Row

from .common import Splits, audio_file, holdout, read_table, split_by

NAME = "tencent"
SPLITS = ("train", "val")
TEST_SPLITS = ("val",)
LAYOUT = "withoutReverberationTrainDevMOS.csv, withReverberationTrainDevMOS.csv (deg_wav,mos) + their wavs"
LISTS = ("withoutReverberationTrainDevMOS.csv", "withReverberationTrainDevMOS.csv")


def read(root: str) -> Splits:
    """``{split: (rows, source)}`` of a Tencent copy; each list is held out on its own."""
    train, val, sources = [], [], []
    for name in LISTS:
        path = os.path.join(root, name)
        rows = []
        for line_no, record in read_table(path, ("deg_wav", "mos")):
            rel = os.path.normpath(record["deg_wav"])
            sample_id = os.path.splitext(rel)[0].replace(os.sep, "_")
            rows.append(Row(sample_id, sample_id, audio_file(root, rel), record["mos"], f"{path}:{line_no}"))
        kept, held = split_by(rows, holdout([r.sample_id for r in rows]))
        train += kept
        val += held
        sources.append(path)
    source = " + ".join(sources)
    return {"train": (train, source), "val": (val, source)}
