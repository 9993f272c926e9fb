"""``python -m distilmos.compress``: the same as ``distilmos-compress``."""

import sys

from .cli import main

sys.exit(main())
