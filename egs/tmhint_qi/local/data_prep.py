#!/usr/bin/env python
"""Data lists of tmhint_qi: `python egs/tmhint_qi/local/data_prep.py --tmhint_qi_root ROOT --out_dir DIR`.

The reader and its layout are in `distilmos/corpora/tmhint_qi.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="tmhint_qi"))
