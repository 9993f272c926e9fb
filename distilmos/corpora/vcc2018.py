"""The Voice Conversion Challenge 2018 listening test (the corpus MOSNet was trained on).

    <root>/mnt/sysope/test_files/testVCC2/<sys>_<trg>_<src>_<sentence>_<HUB|SPO>.wav   submitted conversions
    <root>/vcc2018_listening_test_scores/vcc2018_evaluation_mos.txt                    one row per rating

``<root>`` holds the two DataShare releases unpacked side by side (the converted speech keeps the
``mnt/sysope/test_files/testVCC2/`` path of its archive). The ratings file has no header; its 16
fields are: test id, user id, set id, index in set, system id, second system id (``\\N`` here), source
speaker, target speaker, task (HUB/SPO), same/different truth, naturalness MOS (1-5), similarity,
blank, time stamp, left audio sample, right audio sample. An utterance's score is the mean MOS of the
rows naming it as the left sample; its system is the system id. There is no official split: every
rated utterance is in ``test`` (MOSNet drew its own random train/val/test; use that list through
``python -m distilmos.prep_list`` to reproduce it).

Fairly confident about the field order (documented in the release's
``vcc2018_evaluation_listening_test_results_with_sentence_ID.txt``, read so by lhotse and MOSNet);
unsure whether the natural reference samples rated in the test lie in ``testVCC2/`` (rated files
that are not there are an error naming them).
"""

from __future__ import annotations

import os

from distilmos.datalist import Row

from .common import CorpusLayoutError, Splits, audio_file, average_ratings, read_lines, stem

NAME = "vcc2018"
SPLITS = ("test",)
TEST_SPLITS = ("test",)
LAYOUT = "vcc2018_listening_test_scores/vcc2018_evaluation_mos.txt, mnt/sysope/test_files/testVCC2/*.wav"
SCORES = os.path.join("vcc2018_listening_test_scores", "vcc2018_evaluation_mos.txt")
WAV_DIR = os.path.join("mnt", "sysope", "test_files", "testVCC2")
SYSTEM, MOS, LEFT = 4, 10, 14


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
    systems = {fields[LEFT]: fields[SYSTEM] for _, fields in lines}
    means = average_ratings((fields[LEFT], fields[MOS], f"{path}:{n}") for n, fields in lines)
    rows = [
        Row(stem(name), systems[name], audio_file(wav_dir, name), mean, origin, {"n_ratings": str(count)})
        for name, (mean, count, origin) in means.items()
    ]
    return {"test": (rows, path)}
