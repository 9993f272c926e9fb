#!/usr/bin/env python
"""Data lists of vmc23: `python egs/vmc23/local/data_prep.py --vmc23_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/vmc23.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="vmc23"))
