#!/usr/bin/env python
"""Data lists of ttsds2: `python egs/ttsds2/local/data_prep.py --ttsds2_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/ttsds2.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="ttsds2"))
