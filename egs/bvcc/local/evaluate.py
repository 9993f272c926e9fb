#!/usr/bin/env python
"""Evaluate one checkpoint on several splits in one process.

    python local/evaluate.py --ckpt exp/X/best-states-val.ckpt --splits val test somos_test [--device cuda]

The same as ``run_downstream.py -m evaluate -e CKPT -t SPLIT --device DEVICE`` once per split, without
paying the start-up (torch, s3prl, the upstream's code) again for each. Each split writes
``metrics_<split>.json`` and ``predictions_<split>.csv`` into the experiment folder of the checkpoint.
"""

import argparse
import json
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by run_downstream.py -m train")
    parser.add_argument("--splits", nargs="+", required=True, help="split names the experiment knows")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.ckpt):
        parser.error(f"{args.ckpt}: no such checkpoint (has training finished?)")

    from distilmos.train.runner import main as run_downstream

    expdir = os.path.dirname(os.path.abspath(args.ckpt))
    for split in args.splits:
        run_downstream(
            [os.path.join(REPO_ROOT, "downstream")],
            ["-m", "evaluate", "-e", args.ckpt, "-t", split, "--device", args.device],
        )
        metrics_path = os.path.join(expdir, f"metrics_{split}.json")
        if os.path.isfile(metrics_path):
            with open(metrics_path) as handle:
                metrics = json.load(handle)
            print(
                f"{split}: "
                + " ".join(
                    f"{k} {metrics[k]:.3f}" if isinstance(metrics[k], float) else f"{k} {metrics[k]}"
                    for k in ("utt_SRCC", "sys_SRCC", "utt_MSE", "n_utt")
                    if k in metrics
                )
            )


if __name__ == "__main__":
    main()
