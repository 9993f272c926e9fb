#!/usr/bin/env python
"""Data lists of somos: `python egs/somos/local/data_prep.py --somos_root ROOT --out_dir DIR [--split_dir DIR]`.

The reader and its layout are in `distilmos/corpora/somos.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="somos"))
