#!/usr/bin/env python
"""Data lists of tencent: `python egs/tencent/local/data_prep.py --tencent_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/tencent.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="tencent"))
