#!/usr/bin/env python
"""Plots of one experiment: predicted vs true scores (utterance and system level) for every evaluated
split, and the training curves.

    python local/plots.py --expdir exp/distilmos_wavlm_base_k200_seed0

Reads ``predictions_<split>.csv`` and ``log.jsonl``; writes ``scatter_<split>.png`` and ``curves.png``.
"""

import argparse
import csv
import glob
import json
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from distilmos.eval.metrics import compute_metrics, system_means  # noqa: E402


def scatter(pred_csv, out_png):
    """Two panels: utterance level and system level, with the metrics in the titles."""
    with open(pred_csv) as handle:
        rows = list(csv.DictReader(handle))
    true = [float(r["score"]) for r in rows]
    pred = [float(r["pred"]) for r in rows]
    systems = [r["system_id"] for r in rows]
    metrics = compute_metrics(true, pred, systems)
    sys_true, sys_pred = system_means(systems, true), system_means(systems, pred)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, (xs, ys, level) in zip(
        axes, [(true, pred, "utt"), (list(sys_true.values()), list(sys_pred.values()), "sys")]
    ):
        ax.scatter(xs, ys, s=10 if level == "utt" else 24, alpha=0.6)
        ax.plot([1, 5], [1, 5], color="gray", lw=0.8, ls="--")
        ax.set(
            xlim=(0.8, 5.2),
            ylim=(0.8, 5.2),
            xlabel="true MOS",
            ylabel="predicted MOS",
            title=f"{'utterance' if level == 'utt' else 'system'} level: LCC {metrics[level + '_LCC']:.3f} "
            f"SRCC {metrics[level + '_SRCC']:.3f} MSE {metrics[level + '_MSE']:.3f}",
        )
        ax.set_aspect("equal")
    split = os.path.basename(pred_csv)[len("predictions_") : -len(".csv")]
    fig.suptitle(f"{split} ({metrics['n_utt']} utterances, {metrics['n_sys']} systems)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def curves(log_jsonl, out_png):
    """Training losses and validation utterance/system SRCC over steps (last record per step wins)."""
    series = defaultdict(dict)
    with open(log_jsonl) as handle:
        for line in handle:
            record = json.loads(line)
            split, step = record.pop("split"), record.pop("step")
            for key, value in record.items():
                if value is not None:
                    series[(split, key)][step] = value
    losses = sorted(k for k in series if k[0] == "train")
    evals = sorted(k for k in series if k[0] != "train" and k[1] in ("utt_SRCC", "sys_SRCC"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys, title in [(axes[0], losses, "training losses"), (axes[1], evals, "validation")]:
        for key in keys:
            steps = sorted(series[key])
            ax.plot(
                steps,
                [series[key][s] for s in steps],
                marker="." if key[0] != "train" else None,
                label=f"{key[0]} {key[1]}",
            )
        ax.set(xlabel="step", title=title)
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expdir", required=True)
    args = parser.parse_args(argv)
    written = []
    for pred_csv in sorted(glob.glob(os.path.join(args.expdir, "predictions_*.csv"))):
        out = pred_csv.replace("predictions_", "scatter_").replace(".csv", ".png")
        scatter(pred_csv, out)
        written.append(out)
    log = os.path.join(args.expdir, "log.jsonl")
    if os.path.isfile(log):
        curves(log, os.path.join(args.expdir, "curves.png"))
        written.append(os.path.join(args.expdir, "curves.png"))
    print("plots: " + " ".join(written))


if __name__ == "__main__":
    main()
