"""Stand-ins for the corpora we cannot ship: small generated corpora in the real folder layouts.

Every recipe, test and benchmark that needs a corpus offline imports them from here: the real data
preparation, training and evaluation code then runs end to end on them.

- :mod:`.speech`: speech-like audio without a speech corpus (the voice of every stand-in);
- :mod:`.degradations`: the stand-in systems' degradations, from a severity in (0, 1];
- :mod:`.bvcc_somos`: BVCC and SOMOS in their exact layouts, with listener ratings (:func:`make_corpus`);
- :mod:`.mosbench`: the MOS-Bench corpora in their distributed layouts (:func:`make_mosbench`);
- :mod:`.output`: the output-folder checks both generators share.

    distilmos-standins bvcc_somos --out_dir corpora/demo
    distilmos-standins mosbench --out_dir corpora/mosbench [--corpora "singmos nisqa"]

Layer: the ground floor (``distilmos.errors``, ``distilmos.fileio``) and ``distilmos.data`` only; nothing
above (models, training, predictor, upstream_tokens) and no recipe imports back into here.
"""

from .bvcc_somos import make_corpus
from .cli import main
from .mosbench import make_mosbench

__all__ = ["main", "make_corpus", "make_mosbench"]
