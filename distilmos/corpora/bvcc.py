"""BVCC, the VoiceMOS Challenge 2022 main track (English TTS and VC, natural speech).

Root: the folder holding ``DATA/`` (``main/`` of the release); layout in :mod:`.voicemos`. Splits
train / val / test, the official ones (4,974 / 1,066 / 1,066). Confident: this is the layout
``egs/bvcc/local/data_prep.py`` has always read.
"""

from . import voicemos

NAME = "bvcc"
SPLITS = ("train", "val", "test")
TEST_SPLITS = ("test",)
LAYOUT = "DATA/wav/*.wav, DATA/sets/{train,val,test}_mos_list.txt (+ TRAINSET, DEVSET, TESTSET)"


def read(root: str):
    """``{split: (rows, source)}`` of a BVCC copy."""
    return voicemos.read(root, NAME)
