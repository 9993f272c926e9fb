#!/usr/bin/env python
"""Data lists of pstn: `python egs/pstn/local/data_prep.py --pstn_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/pstn.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="pstn"))
