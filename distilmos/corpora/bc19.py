"""BC19, the VoiceMOS Challenge 2022 out-of-domain track (Chinese TTS of the Blizzard Challenge 2019).

Root: the ``ood/`` folder of the release (``ood.tar.gz`` on Zenodo record 6572573), holding ``DATA/``
in the same layout as BVCC (:mod:`.voicemos`): ``DATA/wav``, ``DATA/sets/{train,val,test}_mos_list.txt``
and the listener files. The track's unlabelled training audio (``unlabeled_mos_list.txt``) has no scores
and is not listed. Splits train / val / test; MOS-Bench evaluates on test.

Unsure: that the OOD release names its files ``<sysID>-<uttID>.wav`` like BVCC (SHEET's reader takes the
system from the listener file's first field and the utterance after the ``-``, which agrees), and whether
``test_mos_list.txt`` ships in every copy; without it the test scores are averaged from ``TESTSET``.
"""

from . import voicemos

NAME = "bc19"
SPLITS = ("train", "val", "test")
TEST_SPLITS = ("test",)
LAYOUT = "(ood/) DATA/wav/*.wav, DATA/sets/{train,val,test}_mos_list.txt or TESTSET"


def read(root: str):
    """``{split: (rows, source)}`` of a BC19 copy."""
    return voicemos.read(root, NAME)
