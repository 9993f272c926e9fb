#!/usr/bin/env python
"""Data lists of singmos: `python egs/singmos/local/data_prep.py --singmos_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/singmos.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="singmos"))
