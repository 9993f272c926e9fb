#!/usr/bin/env python
"""Data lists of svcc23: `python egs/svcc23/local/data_prep.py --svcc23_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/svcc23.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="svcc23"))
