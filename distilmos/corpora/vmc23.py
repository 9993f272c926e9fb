"""The VoiceMOS Challenge 2023 test sets (zero-shot: the challenge had no training data).

    <root>/track1/VoiceMOS2023Track1-<sys>-<task>_test_<n>.wav     French TTS (Blizzard 2023)
    <root>/track2/VoiceMOS2023Track2-<sys>-<src>-<trg>-<n>.wav     singing voice conversion (SVCC 2023)
    <root>/track3/VoiceMOS2023Track3-<system>_<...>_<a>_<b>_<c>.wav  noisy and enhanced Mandarin (TMHINT-QI)
    <root>/answers/track{1,2,3}_answer.txt                          "<id>,<mean score>", no header

The audio folders are the three track releases unpacked into ``track1/``, ``track2/``, ``track3/``
(SHEET's download script does this). The answer files (the scores, released after the challenge) are
not inside the audio archives: put the organisers' answer files there (SHEET keeps copies in
``egs/vmc23/answers/``). Splits, all test sets:

    track1a  track 1 without the "AD" (spoke) task      system "<sys>-<task>", e.g. "A-NEB"
    track1b  track 1 without the "NEB" (hub) task        system e.g. "A-AD"
    track2   track 2                                      system "<sys>", e.g. "B01"
    track3   track 3                                      system: the id without its last three "_" fields,
                                                          e.g. "Noisy_snr5_white_TMHINT", "clean_TMHINT"

Track 3 also lists bare ``TMHINT_...`` ids (system ``TMHINT``); like SHEET, they are left out and only
``clean_TMHINT`` stands for the clean speech. Unlike SHEET, the system is taken after the
``VoiceMOS2023Track3-`` prefix, so an SNR written with a minus (``snr-2``) stays in it. A track whose
audio folder is absent is skipped; one whose answer file is absent is an error naming it.
Confident about the answer-file format and ids (seen in the released answers); the folder names are
SHEET's convention, not the organisers'.
"""

from __future__ import annotations

import os

from distilmos.data.datalist import Row

from .common import CorpusLayoutError, Splits, audio_file, read_lines

NAME = "vmc23"
SPLITS = ("track1a", "track1b", "track2", "track3")
TEST_SPLITS = SPLITS
LAYOUT = "track{1,2,3}/*.wav, answers/track{1,2,3}_answer.txt"
FOLDER = {"track1a": "track1", "track1b": "track1", "track2": "track2", "track3": "track3"}


def system_of(sample_id: str) -> str:
    """The system of a VMC'23 id, by track (see the module docstring)."""
    track, _, rest = sample_id.partition("-")
    if track.endswith("Track1"):
        return rest.split("_", 1)[0]  # "A-AD_test_0026" -> "A-AD"
    if track.endswith("Track2"):
        return rest.split("-", 1)[0]  # "B01-SF1-CDF1-30001" -> "B01"
    if track.endswith("Track3"):
        return "_".join(rest.split("_")[:-3])  # "clean_TMHINT_b1_01_03" -> "clean_TMHINT"
    return sample_id


def keep(split: str, system: str) -> bool:
    """Whether an utterance of ``system`` belongs to ``split``."""
    if split == "track1a":
        return not system.endswith("-AD")
    if split == "track1b":
        return not system.endswith("-NEB")
    if split == "track3":
        return system != "TMHINT"
    return True


def read(root: str) -> Splits:
    """``{split: (rows, source)}`` of the tracks present under ``root``."""
    splits: Splits = {}
    for split in SPLITS:
        folder = os.path.join(root, FOLDER[split])
        if not os.path.isdir(folder):
            continue
        answers = os.path.join(root, "answers", f"{FOLDER[split]}_answer.txt")
        if not os.path.isfile(answers):
            raise CorpusLayoutError(
                f"{answers}: no such score file; put the organisers' {FOLDER[split]} answer "
                "file there (SHEET keeps a copy in egs/vmc23/answers/)"
            )
        rows = []
        for line_no, fields in read_lines(answers):
            sample_id = fields[0]
            system = system_of(sample_id)
            if keep(split, system):
                rows.append(
                    Row(
                        sample_id,
                        system,
                        audio_file(folder, sample_id),
                        fields[1] if len(fields) > 1 else None,
                        f"{answers}:{line_no}",
                    )
                )
        splits[split] = (rows, answers)
    if not splits:
        raise CorpusLayoutError(
            f"{os.path.join(root, 'track1')}: not found (nor track2/, track3/); the VMC'23 "
            "root must hold the unpacked tracks track1/, track2/, track3/ and answers/"
        )
    return splits
