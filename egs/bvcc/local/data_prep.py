#!/usr/bin/env python
"""Data lists of bvcc: `python egs/bvcc/local/data_prep.py --bvcc_root ROOT --out_dir DIR`
(`--split random811 --split_seed S` for the random 8:1:1 split; `--allow_constant_test` for a placeholder TESTSET).

The reader and its layout are in `distilmos/corpora/bvcc.py` (`--help` prints them).
"""

import sys

from distilmos.corpora import main

if __name__ == "__main__":
    sys.exit(main(name="bvcc"))
