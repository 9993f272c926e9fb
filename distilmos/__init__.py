"""DistilMOS toolkit: the installed package the s3prl downstream experts, the token builder and the predictor
stand on.

Its layers, lowest first (a layer imports only the layers below it, never a sibling; tests/test_layout.py):
the foundation (:mod:`.errors`, :mod:`.fileio`, :mod:`.registry`, this module) < :mod:`.data`, :mod:`.eval`,
:mod:`.models` < :mod:`.upstream`, :mod:`.corpora` (and the stand-in corpora) < :mod:`.predictor`,
:mod:`.train`, :mod:`.pretrain` < :mod:`.compress`; :mod:`upstream_tokens` stands on top of them all.

Subpackages are imported where needed (``distilmos.data.audio``, ``distilmos.data.datalist``, ...) so that
importing the package stays cheap.
"""

__version__ = "0.1.0"
