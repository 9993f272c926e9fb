#!/usr/bin/env python
"""Data lists of tcd_voip: `python egs/tcd_voip/local/data_prep.py --tcd_voip_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/tcd_voip.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="tcd_voip"))
