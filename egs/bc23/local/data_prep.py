#!/usr/bin/env python
"""Data lists of bc23: `python egs/bc23/local/data_prep.py --bc23_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/bc23.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="bc23"))
