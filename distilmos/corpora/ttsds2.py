"""TTSDS2 (Minixhofer, Klejch and Bell, 2025): the listening test released with the TTSDS2 benchmark,
the outputs of open TTS systems in several speech domains rated by listeners on several scales, as
MOS-Bench tests on it, in the layout of the archive SHEET downloads.

    <root>/subjective_results.csv     audio,dataset,system,rating_type,value,annotator,survey_part,page,id:
                                      one row per rating
    <root>/<audio>                    the rated files, paths relative to the root as the CSV's audio column

``<root>`` is ``ttsds2.zip`` of the Hugging Face dataset ``urgent-challenge/urgent26_track2_sqa``
unpacked (SHEET's ``egs/ttsds2/local/data_download.sh``, github.com/unilight/sheet; the original release
is the Hugging Face dataset ``ttsds/listening_test``). Only the rows of ``rating_type`` ``mos`` are read
(the other scales' rows are left out, as in SHEET); each file's ratings (``value``) are averaged,
``n_ratings`` kept. The system is ``<dataset>-<system>`` (the domain and the TTS system); the sample id
is ``<dataset>-<system>-<file stem>``, as SHEET takes them (file names may repeat across systems). One
split, ``test``: every rated file (460 files of 80 systems in the URGENT 2026 track 2 data table).

SHEET drops a rating whose audio file is not in the copy; here a missing file is an error naming it, as
for every corpus (a copy that lacks files must say so).

Sure of the file name and of the columns read (``audio``, ``dataset``, ``system``, ``rating_type``,
``value``: SHEET's recipe and the URGENT 2026 challenge's copy of it read them so); unsure of the folder
names inside the archive (they are only ever taken from ``audio``), of the sample rates (any rate is
resampled on reading), and of whether every MOS rating's file ships (SHEET skips the ones that do not).
"""

from __future__ import annotations

import os

from distilmos.data.datalist import Row

from .common import Splits, audio_file, average_ratings, read_table, require, stem

NAME = "ttsds2"
SPLITS = ("test",)
TEST_SPLITS = ("test",)
LAYOUT = (
    "subjective_results.csv (audio,dataset,system,rating_type,value,...) + the files it names "
    "(ttsds2.zip of urgent-challenge/urgent26_track2_sqa)"
)
RESULTS = "subjective_results.csv"
COLUMNS = ("audio", "dataset", "system", "rating_type", "value")


def read(root: str) -> Splits:
    """``{"test": (rows, source)}`` of a TTSDS2 copy."""
    path = require(
        os.path.join(root, RESULTS),
        "download ttsds2.zip from the Hugging Face dataset "
        "urgent-challenge/urgent26_track2_sqa and unpack it in the root (SHEET's "
        "egs/ttsds2/local/data_download.sh, github.com/unilight/sheet)",
    )
    systems, ratings = {}, []
    for n, r in read_table(path, COLUMNS):
        if r["rating_type"].lower() != "mos":
            continue
        audio = os.path.normpath(r["audio"])
        systems.setdefault(audio, f"{r['dataset']}-{r['system']}")
        ratings.append((audio, r["value"], f"{path}:{n}"))
    rows = [
        Row(
            f"{systems[audio]}-{stem(audio)}",
            systems[audio],
            audio_file(root, audio),
            mean,
            origin,
            {"n_ratings": str(count)},
        )
        for audio, (mean, count, origin) in average_ratings(ratings).items()
    ]
    return {"test": (rows, path)}
