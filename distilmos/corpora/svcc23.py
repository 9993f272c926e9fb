"""SVCC23, the Singing Voice Conversion Challenge 2023 naturalness test as MOS-Bench uses it: the
audio and scores of the VoiceMOS Challenge 2023 track 2, in SHEET's svcc23 layout.

    <root>/wavs/VoiceMOS2023Track2-<sys>-<src>-<trg>-<n>.wav   the track 2 release (VoiceMOS_2023_track2.zip)
    <root>/answers/listener_wise_answer.csv                    sample_id,listener_name,score: one row per rating
    <root>/answers/answer.csv                                  or "<id>,<mean score>", no header

``wavs/`` is where SHEET's download script moves the archive's files; the archive unpacked as it is
(``VoiceMOS_2023_track2/*.wav``) is read too. The scores are not in the audio release: SHEET keeps both
answer files in ``egs/svcc23/answers/`` (github.com/unilight/sheet); copy either to ``answers/``. The
listener-wise one is read when both are there (its means are exactly ``answer.csv``'s, checked on
SHEET's copies; ``n_ratings`` is kept); ``answer.csv`` has the lines of VMC'23's ``track2_answer.txt``.

The system is the second ``-`` field: ``B01``, ``B02`` (baselines), ``T01`` ... ``T24`` (teams), ``SOU``
and ``TAR`` (the natural source and target singing). Source singers ``SF1``/``SM1``; targets
``IDF1``/``IDM1`` (in-domain, task 1) and ``CDF1``/``CDM1`` (cross-domain, task 2). One split, ``test``:
every rated utterance, as SHEET's svcc23_test (4040 in SHEET's copy, 5 to 26 ratings each); the same
utterances and scores as :mod:`.vmc23`'s track2.

Sure of the answer files and the ids (read in SHEET's copies); fairly sure of the folder names (SHEET's
download script); the sample rate was not checked (any rate is resampled on reading).
"""

from __future__ import annotations

import os

from distilmos.data.datalist import Row

from .common import CorpusLayoutError, Splits, audio_file, average_ratings, first_dir, read_lines, read_table

NAME = "svcc23"
SPLITS = ("test",)
TEST_SPLITS = ("test",)
LAYOUT = (
    "wavs/*.wav (or VoiceMOS_2023_track2/), answers/listener_wise_answer.csv or answers/answer.csv "
    "(SHEET's egs/svcc23/answers/)"
)
AUDIO_DIRS = ("wavs", "VoiceMOS_2023_track2")
LISTENER_WISE = os.path.join("answers", "listener_wise_answer.csv")
MEANS = os.path.join("answers", "answer.csv")


def system_of(sample_id: str) -> str:
    """``VoiceMOS2023Track2-B01-SF1-CDF1-30001`` -> ``B01``."""
    fields = sample_id.split("-")
    return fields[1] if len(fields) > 1 else sample_id


def read(root: str) -> Splits:
    """``{"test": (rows, source)}`` of an SVCC23 copy."""
    wav_dir = first_dir(
        root, AUDIO_DIRS, f"the SVCC23 root must hold the track 2 audio in wavs/ and {LISTENER_WISE} or {MEANS}"
    )
    listener_wise, means = os.path.join(root, LISTENER_WISE), os.path.join(root, MEANS)
    if os.path.isfile(listener_wise):
        ratings = average_ratings(
            (r["sample_id"], r["score"], f"{listener_wise}:{n}")
            for n, r in read_table(listener_wise, ("sample_id", "score"))
        )
        rows = [
            Row(
                sample_id, system_of(sample_id), audio_file(wav_dir, sample_id), mean, origin, {"n_ratings": str(count)}
            )
            for sample_id, (mean, count, origin) in ratings.items()
        ]
        return {"test": (rows, listener_wise)}
    if not os.path.isfile(means):
        raise CorpusLayoutError(
            f"{listener_wise}: no such score file (nor {means}); the scores are not in the audio "
            "release: copy SHEET's egs/svcc23/answers/listener_wise_answer.csv "
            "(github.com/unilight/sheet) there"
        )
    rows = [
        Row(
            fields[0],
            system_of(fields[0]),
            audio_file(wav_dir, fields[0]),
            fields[1] if len(fields) > 1 else None,
            f"{means}:{line_no}",
        )
        for line_no, fields in read_lines(means)
    ]
    return {"test": (rows, means)}
