#!/usr/bin/env python
"""Data lists of urgent2024_mos:
`python egs/urgent2024_mos/local/data_prep.py --urgent2024_mos_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/urgent2024_mos.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="urgent2024_mos"))
