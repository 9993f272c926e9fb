#!/usr/bin/env python
"""One Markdown table of finished runs on frozen features, for the learning checks of the frozen heads.

    python egs/demo/local/heads_table.py --runs "SALF-MOS=exp/salf" "ridge=exp/ridge" [--split test]
        [--reference ridge] [--margin 0.05]

Each run is an experiment folder with ``metrics_<split>.json`` (a trained expert, or the ridge yardstick of
``ridge_yardstick.py``). A trained run's row also names the validation step it was selected at and, for
MoE-MOS, the expert usage, gate entropy and system accuracy of that validation. With ``--reference``, the
line under the table says how far every other run's utterance SRCC is from that run's (against the target
``--margin`` when given).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys


def _read(path: str):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def row(name: str, expdir: str, split: str) -> dict:
    """The table's cells of one run."""
    metrics = _read(os.path.join(expdir, f"metrics_{split}.json"))
    if metrics is None:
        raise SystemExit(f"{expdir}: no metrics_{split}.json (has the run finished?)")
    best = _read(os.path.join(expdir, "metrics_val_best.json")) or {}
    usage = [
        best[k]
        for k in sorted((k for k in best if k.startswith("expert_usage_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    ]
    return {
        "name": name,
        "utt_SRCC": metrics.get("utt_SRCC"),
        "sys_SRCC": metrics.get("sys_SRCC"),
        "utt_MSE": metrics.get("utt_MSE"),
        "step": best.get("step"),
        "usage": " ".join(f"{u:.2f}" for u in usage) if usage else "–",
        "entropy": best.get("gate_entropy"),
        "sys_acc": best.get("sys_acc"),
    }


def table(rows: list, split: str) -> str:
    lines = [
        f"| model | {split} utt SRCC | {split} sys SRCC | {split} utt MSE | selected at (val step) | "
        "val expert usage | gate entropy | val system acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {_fmt(r['utt_SRCC'])} | {_fmt(r['sys_SRCC'])} | {_fmt(r['utt_MSE'])} | "
            f"{r['step'] if r['step'] is not None else 'closed form'} | {r['usage']} | "
            f"{_fmt(r['entropy'])} | {_fmt(r['sys_acc'])} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="NAME=EXPDIR, in table order")
    parser.add_argument("--split", default="test")
    parser.add_argument("--reference", help="the NAME every other run's utterance SRCC is compared with")
    parser.add_argument(
        "--margin", type=float, help="how far below the reference still meets a target (none: no verdict)"
    )
    args = parser.parse_args(argv)
    rows = [row(*spec.rsplit("=", 1), args.split) for spec in args.runs]  # a name may hold "="
    print("\n" + table(rows, args.split) + "\n")
    if args.reference:
        reference = next((r for r in rows if r["name"] == args.reference), None)
        if reference is None:
            raise SystemExit(f"--reference {args.reference!r} is not one of the runs")
        for r in rows:
            if r is not reference:
                gap = r["utt_SRCC"] - reference["utt_SRCC"]
                verdict = (
                    ""
                    if args.margin is None
                    else f" (target >= -{args.margin}: {'met' if gap >= -args.margin else 'not met'})"
                )
                print(f"{r['name']} - {reference['name']}, {args.split} utterance SRCC: {gap:+.3f}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
