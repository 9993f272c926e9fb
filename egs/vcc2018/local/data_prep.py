#!/usr/bin/env python
"""Data lists of vcc2018: `python egs/vcc2018/local/data_prep.py --vcc2018_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/vcc2018.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="vcc2018"))
