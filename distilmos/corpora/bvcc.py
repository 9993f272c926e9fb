"""BVCC, the VoiceMOS Challenge 2022 main track (English TTS and VC, natural speech).

Root: the folder holding ``DATA/`` (``main/`` of the release); layout in :mod:`.voicemos`. Splits
train / val / test, the official ones (4,974 / 1,066 / 1,066). Confident: this is the layout
``egs/bvcc/local/data_prep.py`` has always read.

``split="random811"`` deals the same 7,106 labelled utterances at random 8:1:1 instead (SALF-MOS reports its
BVCC numbers on such a split, Agrawal et al., 2025): by utterance, as the paper's "random split" reads (a
system's utterances land in every split; systems keep their ids), seeded by ``split_seed``, 710 val and 710
test utterances (a tenth each, rounded down) and the other 5,686 in train. Each row keeps its official
split in the extra column ``original_split``.
"""

from __future__ import annotations

from . import voicemos
from .common import CorpusLayoutError, Option, Splits, resplit

NAME = "bvcc"
SPLITS = ("train", "val", "test")
TEST_SPLITS = ("test",)
#: the corpus names the listener of each rating: preparation writes <split>_listeners.csv too
LISTENERS = True
LAYOUT = "DATA/wav/*.wav, DATA/sets/{train,val,test}_mos_list.txt (+ TRAINSET, DEVSET, TESTSET)"
#: ``split`` choices: the challenge's lists, or every labelled utterance dealt 8:1:1 at random
SPLIT_MODES = ("official", "random811")
RANDOM_811 = {"train": 0.8, "val": 0.1, "test": 0.1}
#: ``read``'s options, offered as ``--<name>`` by ``distilmos-prep bvcc`` and ``egs/bvcc/local/data_prep.py``
OPTIONS = (
    Option(
        "split",
        "official",
        "official: the challenge's lists; random811: every labelled utterance dealt 8:1:1",
        SPLIT_MODES,
    ),
    Option("split_seed", 0, "seed of --split random811"),
    Option(
        "allow_constant_test",
        False,
        "accept a TESTSET whose ratings are all the same (a placeholder) as the test labels",
    ),
)


def read(root: str, allow_constant_test: bool = False, split: str = "official", split_seed: int = 0) -> Splits:
    """``{split: (rows, source)}`` of a BVCC copy, on the official split or ``random811`` (see the module
    docstring); ``allow_constant_test``: see :mod:`.voicemos`."""
    if split not in SPLIT_MODES:
        raise CorpusLayoutError(f"unknown BVCC split {split!r}; choose from {', '.join(SPLIT_MODES)}")
    splits = voicemos.read(root, NAME, allow_constant_test=allow_constant_test)
    if split == "official":
        return splits
    if "test" not in splits:
        raise CorpusLayoutError(
            f"{root}: the random 8:1:1 split pools the official train, val and test lists, and "
            "this copy has no test labels (DATA/sets/test_mos_list.txt or TESTSET)"
        )
    return resplit(splits, RANDOM_811, split_seed, f"random 8:1:1 by utterance, seed {split_seed}")
