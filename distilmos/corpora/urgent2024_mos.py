"""URGENT 2024 MOS: the listening test of the URGENT 2024 speech enhancement challenge's blind test set
(the noisy inputs and the teams' enhanced outputs, 8 crowd ratings each, ACR 1-5), one of MOS-Bench's
training sets, in the layout SHEET's download step writes.

    <root>/metadata.csv       wav_path,system_id,sample_id,sampling_rate,score,raw_ratings: one row per clip
    <root>/wavs/<id>.wav      the clips, each at its own sample rate (8 to 48 kHz)

The corpus ships only as a Hugging Face dataset (``urgent-challenge/urgent2024_mos``: parquet, one split
``test`` whose rows hold ``id``, the audio, ``sampling_rate``, ``mos`` and ``raw_ratings``), not as files
on disk. SHEET's ``egs/urgent2024-mos/local/data_download.py`` (github.com/unilight/sheet), run in the
root, turns it into the layout above: ``wavs/<id>.wav`` and ``metadata.csv`` with ``wav_path`` relative to
the root, ``score`` the row's ``mos`` (the mean of ``raw_ratings``) and ``system_id`` equal to the sample id.
Only ``wav_path`` and ``score`` are read; the sample id is the file's stem, as SHEET's recipe takes it.

The system is the id before its first ``-`` (``P426-fileid_184`` -> ``P426``): the clips are the outputs
of 23 systems, the noisy inputs included, on the same 300 source files (``fileid_<n>``), 6900 in all.
SHEET counts every clip as its own system, so system-level metrics here differ from SHEET's.

No validation or test set ships: a seeded 10 % of the clips (seed 1337, independent of file order)
becomes ``val``, as SHEET's recipe draws its dev set (SHEET's shuffle is not seeded). The same source file
is in both splits through other systems' outputs. Splits train / val; no test set, so the MOS-Bench
benchmark does not evaluate it.

Sure of ``metadata.csv``, its columns and ``wavs/<id>.wav`` (read in SHEET's download script and recipe)
and of the Hugging Face fields; fairly sure of the system being the id's prefix (two public scripts that
read the set group it so, one from the challenge's organisers) and of the counts and sample rates (a
public description of the set: 23 x 300 clips, 8 ratings each, 8 to 48 kHz; a row at 22.05 kHz); any
rate is resampled on reading.
"""

from __future__ import annotations

import os

from .common import Splits, holdout, require, score_table, split_by

NAME = "urgent2024_mos"
SPLITS = ("train", "val")
TEST_SPLITS = ()
LAYOUT = (
    "metadata.csv (wav_path,...,score,...) + wavs/<id>.wav, as SHEET's egs/urgent2024-mos/local/"
    "data_download.py writes them from the Hugging Face set"
)
METADATA = "metadata.csv"


def system_of(sample_id: str) -> str:
    """``P426-fileid_184`` -> ``P426`` (the id itself when it has no ``-``)."""
    return sample_id.split("-", 1)[0]


def read(root: str) -> Splits:
    """``{split: (rows, source)}`` of an URGENT 2024 MOS copy."""
    path = require(
        os.path.join(root, METADATA),
        "the corpus ships only as the Hugging Face dataset "
        "urgent-challenge/urgent2024_mos: run SHEET's egs/urgent2024-mos/local/data_download.py "
        "(github.com/unilight/sheet; needs the datasets package) in the root to write metadata.csv "
        "and wavs/",
    )
    rows = score_table(path, root, "wav_path", "score", system_of)
    train, val = split_by(rows, holdout([r.sample_id for r in rows]))
    return {"train": (train, path), "val": (val, path)}
