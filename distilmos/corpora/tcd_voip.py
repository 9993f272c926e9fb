"""TCD-VoIP (Harte, Gillen and Hines, QoMEX 2015): English speech with VoIP degradations, rated by 24
listeners (ACR, 1-5).

    <root>/Test Set/<type>/C_<nn>_<TYPE>_<talker>.wav       the rated files, 48 kHz mono
    <root>/Test Set/<type>/ref/R_<nn>_<TYPE>_<talker>.wav   their references (not listed)
    <root>/answers/tcd-voip_answer.csv                      Filename,ConditionID,MOS: one row per rated file

``<type>`` is ``chop``, ``clip``, ``compspkr``, ``echo`` or ``noise``, the file's third ``_`` field in lower
case; ``<talker>`` is FA, FG, MK, ML. The release's scores are a spreadsheet (``TCD VOIP - Test Set
Conditions and MOS Results.xlsx``, sheet "Subjective Test Scores": Filename, ConditionID, sample MOS, then
each listener's rating), which is not read here: copy SHEET's CSV of its first three columns,
``egs/tcd-voip/answers/tcd-voip_answer.csv`` (github.com/unilight/sheet), to ``answers/`` (an own export
must name the columns Filename,ConditionID,MOS). SHEET's recipe reads the audio from ``wav/<type>/``
instead of ``Test Set/<type>/``; either folder is read. 384 files are rated; the MNRU files of the
echo folder (``C_21_ECHO_*`` to ``C_24_ECHO_*``) have no scores and are not listed.

The system is the condition, ``<TYPE>-<ConditionID>`` (``ECHO-7``: the four talkers of one condition).
ConditionID 21 to 24 are each type's MNRU anchors (Q = 48, 36, 24, 12 dB); in clip and compspkr their
files are numbered 11 to 14, so the condition comes from the column, not from the file name. SHEET counts
every file as its own system (its system-level figures are its utterance-level ones), so system-level
metrics here differ from SHEET's. One split, ``test``.

Sure of the file names, folders, spreadsheet and sample rate (seen in a public copy of the release,
github.com/nschimme/TCD-VOIP, whose 384 scores and conditions are those of SHEET's CSV); unsure whether
the Google Drive copy that SHEET downloads has ``Test Set/`` or ``wav/``.
"""

from __future__ import annotations

import os

from distilmos.data.datalist import Row

from .common import Splits, first_dir, read_table, require, stem

NAME = "tcd_voip"
SPLITS = ("test",)
TEST_SPLITS = ("test",)
LAYOUT = "Test Set/<type>/*.wav (or wav/<type>/), answers/tcd-voip_answer.csv (SHEET's egs/tcd-voip/answers/)"
AUDIO_DIRS = ("Test Set", "wav")
ANSWERS = os.path.join("answers", "tcd-voip_answer.csv")


def degradation(name: str) -> str:
    """``C_01_ECHO_FA.wav`` -> ``ECHO`` (the name itself when it has fewer fields)."""
    fields = stem(name).split("_")
    return fields[2] if len(fields) > 2 else stem(name)


def read(root: str) -> Splits:
    """``{"test": (rows, source)}`` of a TCD-VoIP copy."""
    wav_dir = first_dir(root, AUDIO_DIRS, f"the TCD-VoIP root must hold Test Set/<type>/*.wav and {ANSWERS}")
    path = require(
        os.path.join(root, ANSWERS),
        "copy SHEET's egs/tcd-voip/answers/tcd-voip_answer.csv "
        "(github.com/unilight/sheet) there, or export Filename, ConditionID and sample MOS (as MOS) "
        "of the release's spreadsheet",
    )
    rows = [
        Row(
            stem(r["Filename"]),
            f"{degradation(r['Filename'])}-{r['ConditionID']}",
            os.path.join(wav_dir, degradation(r["Filename"]).lower(), os.path.basename(r["Filename"])),
            r["MOS"],
            f"{path}:{n}",
        )
        for n, r in read_table(path, ("Filename", "ConditionID", "MOS"))
    ]
    return {"test": (rows, path)}
