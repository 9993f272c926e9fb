#!/usr/bin/env python
"""Data lists of bc19: `python egs/bc19/local/data_prep.py --bc19_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/bc19.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="bc19"))
