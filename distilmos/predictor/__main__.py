"""``python -m distilmos.predictor``: the same as ``distilmos-predict``."""

import sys

from .cli import main

sys.exit(main())
