"""The Voice Conversion Challenge 2018 listening test (the corpus MOSNet was trained on).

    <root>/mnt/sysope/test_files/testVCC2/<sys>_<trg>_<src>_<sentence>_<HUB|SPO>.wav   submitted conversions
    <root>/mnt/sysope/test_files/testVCC2/..._NAT.wav                                   natural speech rated too
    <root>/vcc2018_listening_test_scores/vcc2018_evaluation_mos.txt                    one row per rating

``<root>`` holds the two DataShare releases unpacked side by side (the converted speech keeps the
``mnt/sysope/test_files/testVCC2/`` path of its archive). The ratings file has no header; its 16
fields are: test id, user id, set id, index in set, system id, second system id (``\\N`` here), source
speaker, target speaker, task (HUB/SPO), same/different truth, naturalness MOS (1-5), similarity,
blank, time stamp, left audio sample, right audio sample. An utterance's score is the mean MOS of the
rows naming it as the left sample; its system is the system id. There is no official split: every
rated utterance is in ``test`` (MOSNet drew its own random train/val/test; use that list through
``python -m distilmos.data.score_list`` to reproduce it).

The test also rates natural speech, files named ``*_NAT.wav`` beside the hub (``_HUB``) and spoke (``_SPO``)
conversions. They are read as systems of their own, never pooled into a conversion system's mean: by the
speakers in the file name, whose VCC 2018 ids say their role (``VCC2S*`` source speakers, ``VCC2T*``
targets), ``NAT_SRC`` (natural source speech) or ``NAT_TRG`` (natural target speech), else ``NAT``. The
extra column ``task`` says ``hub``, ``spoke`` or ``natural`` (from the file name's last ``_`` field, else
the ratings file's task field).

Fairly confident about the field order (documented in the release's
``vcc2018_evaluation_listening_test_results_with_sentence_ID.txt``, read so by lhotse and MOSNet);
unsure of the natural samples' exact names and of the system id the ratings file gives them (the reader
does not use it for them), and whether they lie in ``testVCC2/`` (rated files that are not there are an
error naming them).
"""

from __future__ import annotations

import os
import re

from distilmos.data.datalist import Row

from .common import CorpusLayoutError, Splits, audio_file, average_ratings, read_lines, stem

NAME = "vcc2018"
SPLITS = ("test",)
TEST_SPLITS = ("test",)
LAYOUT = "vcc2018_listening_test_scores/vcc2018_evaluation_mos.txt, mnt/sysope/test_files/testVCC2/*.wav"
SCORES = os.path.join("vcc2018_listening_test_scores", "vcc2018_evaluation_mos.txt")
WAV_DIR = os.path.join("mnt", "sysope", "test_files", "testVCC2")
SYSTEM, TASK, MOS, LEFT = 4, 8, 10, 14
TASKS = {"HUB": "hub", "SPO": "spoke", "NAT": "natural"}
SPEAKER_ROLE = re.compile(r"VCC2([ST])[FM]\d")  # VCC2SF1: a source speaker; VCC2TM2: a target


def task_of(name: str, field: str) -> str:
    """``hub``, ``spoke`` or ``natural``: the file name's last ``_`` field, else the ratings file's task."""
    suffix = stem(name).rsplit("_", 1)[-1].upper()
    return TASKS.get(suffix) or TASKS.get(field.upper(), field.lower())


def natural_system(name: str) -> str:
    """The system of a natural sample: ``NAT_SRC`` or ``NAT_TRG`` by its speakers' role, else ``NAT``."""
    roles = set(SPEAKER_ROLE.findall(stem(name)))
    return {frozenset("S"): "NAT_SRC", frozenset("T"): "NAT_TRG"}.get(frozenset(roles), "NAT")


def read(root: str) -> Splits:
    """``{"test": (rows, source)}`` of a VCC 2018 copy."""
    path = os.path.join(root, SCORES)
    if not os.path.isfile(path):
        raise CorpusLayoutError(f"{path}: no such score file; the VCC2018 root must hold {SCORES} and {WAV_DIR}/")
    wav_dir = os.path.join(root, WAV_DIR)
    lines = read_lines(path)
    short = [n for n, fields in lines if len(fields) <= LEFT]
    if short:
        raise CorpusLayoutError(
            f"{path}:{short[0]}: fewer than {LEFT + 1} fields ({len(short)} such line(s)); not the VCC2018 ratings file"
        )
    tasks = {fields[LEFT]: task_of(fields[LEFT], fields[TASK]) for _, fields in lines}
    systems = {
        fields[LEFT]: natural_system(fields[LEFT]) if tasks[fields[LEFT]] == "natural" else fields[SYSTEM]
        for _, fields in lines
    }
    means = average_ratings((fields[LEFT], fields[MOS], f"{path}:{n}") for n, fields in lines)
    rows = [
        Row(
            stem(name),
            systems[name],
            audio_file(wav_dir, name),
            mean,
            origin,
            {"n_ratings": str(count), "task": tasks[name]},
        )
        for name, (mean, count, origin) in means.items()
    ]
    return {"test": (rows, path)}
