#!/usr/bin/env python
"""The table of egs/demo/listener_learning_check.sh: per run (``NAME=EXPDIR``), the test list's utterance and
system SRCC and MSE, the Spearman correlation of the predicted std with |error| (uncertainty runs), and the
training seconds per step (``EXPDIR/train_seconds`` over ``--total_steps``; it includes the validations) beside
the first run's.

    python egs/demo/local/listener_table.py --total_steps 300 --runs plain=exp/a listener=exp/b
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def row(name: str, expdir: str, total_steps: int, base: float | None) -> tuple[str, float]:
    """One Markdown row and the run's seconds per step."""
    with open(os.path.join(expdir, "metrics_test.json"), encoding="utf-8") as handle:
        m = json.load(handle)
    with open(os.path.join(expdir, "train_seconds"), encoding="utf-8") as handle:
        per_step = float(handle.read()) / total_steps

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    ratio = f" (x{per_step / base:.2f})" if base else ""
    cells = [name, fmt(m["utt_SRCC"]), fmt(m["sys_SRCC"]), fmt(m["utt_MSE"]), fmt(m.get("std_err_SRCC"))]
    return "| " + " | ".join(cells + [f"{per_step:.3f}{ratio}"]) + " |", per_step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, metavar="NAME=EXPDIR")
    parser.add_argument("--total_steps", type=int, required=True)
    args = parser.parse_args(argv)
    print("| run | test utt SRCC | test sys SRCC | test utt MSE | std vs abs err SRCC | s / step |")
    print("|---|---|---|---|---|---|")
    base = None
    for spec in args.runs:
        name, _, expdir = spec.partition("=")
        line, per_step = row(name, expdir, args.total_steps, base)
        base = base or per_step
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
