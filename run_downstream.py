#!/usr/bin/env python
"""s3prl's downstream runner with this repository's experts registered.

    python run_downstream.py -m train -u wavlm_large -d distilmos -f -n my_exp
    python run_downstream.py -m evaluate -e result/downstream/my_exp/best-states-val.ckpt -t test

Every s3prl flag works as in s3prl; see ``python run_downstream.py -h`` and distilmos/train/runner.py.
"""

import os

from distilmos.train.runner import main

if __name__ == "__main__":
    main([os.path.join(os.path.dirname(os.path.abspath(__file__)), "downstream")])
