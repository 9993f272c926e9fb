#!/usr/bin/env python
"""Data lists of nisqa: `python egs/nisqa/local/data_prep.py --nisqa_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/nisqa.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="nisqa"))
