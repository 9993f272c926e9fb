"""BC23, the Blizzard Challenge 2023 French TTS listening test as MOS-Bench uses it: the audio and
scores of the VoiceMOS Challenge 2023 track 1, in SHEET's bc23 layout.

    <root>/wavs/VoiceMOS2023Track1-<sys>-<task>_test_<n>.wav    the track 1 release (VoiceMOS2023Track1.zip)
    <root>/answers/answer.csv                                   "<id>,<mean score>", no header

``wavs/`` is where SHEET's download script moves the archive's files; the archive unpacked as it is
(``VoiceMOS2023Track1/*.wav``) is read too. The scores are not in the audio release: copy SHEET's
``egs/bc23/answers/answer.csv`` (the organisers' track 1 answers, github.com/unilight/sheet) to
``answers/answer.csv``; the same lines as VMC'23's ``track1_answer.txt``. The system is
``<sys>-<task>`` (``A-NEB``, ``BF-AD``). Splits, both test sets:

    hub    the hub task, speaker NEB: systems "*-NEB"              SHEET's bc23a_test
    spoke  the spoke task, speaker AD (adaptation): "*-AD"         SHEET's bc23b_test

An id of neither task would be left out, as SHEET does; SHEET's copy has none (1460 lines: 21 NEB
systems of 42 utterances, 17 AD systems of 34). These are the utterances and scores of
:mod:`.vmc23`'s track1a and track1b. Sure of the answer file and the ids (read in SHEET's copy); fairly
sure of the folder names (SHEET's download script); the sample rate was not checked (any rate is
resampled on reading).
"""

from __future__ import annotations

import os

from distilmos.data.datalist import Row

from .common import Splits, audio_file, first_dir, read_lines, require

NAME = "bc23"
SPLITS = ("hub", "spoke")
TEST_SPLITS = SPLITS
LAYOUT = "wavs/*.wav (or VoiceMOS2023Track1/), answers/answer.csv (SHEET's egs/bc23/answers/)"
AUDIO_DIRS = ("wavs", "VoiceMOS2023Track1")
ANSWERS = os.path.join("answers", "answer.csv")
TASK = {"NEB": "hub", "AD": "spoke"}


def system_of(sample_id: str) -> str:
    """``VoiceMOS2023Track1-A-AD_test_0026`` -> ``A-AD``."""
    return sample_id.split("_", 1)[0].partition("-")[2]


def read(root: str) -> Splits:
    """``{split: (rows, source)}`` of a BC23 copy."""
    wav_dir = first_dir(root, AUDIO_DIRS, f"the BC23 root must hold the track 1 audio in wavs/ and {ANSWERS}")
    path = require(
        os.path.join(root, ANSWERS),
        "the scores are not in the audio release: copy SHEET's "
        "egs/bc23/answers/answer.csv (github.com/unilight/sheet) there",
    )
    rows = {split: [] for split in SPLITS}
    for line_no, fields in read_lines(path):
        sample_id = fields[0]
        system = system_of(sample_id)
        split = TASK.get(system.rsplit("-", 1)[-1])
        if split:
            rows[split].append(
                Row(
                    sample_id,
                    system,
                    audio_file(wav_dir, sample_id),
                    fields[1] if len(fields) > 1 else None,
                    f"{path}:{line_no}",
                )
            )
    return {split: (rows[split], path) for split in SPLITS}
