"""``python -m upstream_tokens``: see :mod:`upstream_tokens.cli`."""

import sys

from .cli import main

sys.exit(main())
