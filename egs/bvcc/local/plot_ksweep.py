#!/usr/bin/env python
"""The k sweep in the shape of the paper's Fig. 2: SRCC against the number of clusters k.

    python local/plot_ksweep.py --expdirs exp/distilmos_wavlm_base_k*_seed*/ \
        [--baselines exp/ssl_mos_wavlm_base_seed0 exp/no_token_wavlm_base_seed0 ...] --out exp/ksweep

Three panels: BVCC utterance-level SRCC, BVCC system-level SRCC (both on the test set) and SOMOS
utterance-level SRCC (zero-shot). Each experiment folder holds ``info.json`` (written by run.sh:
upstream, variant, n_clusters, seed) and ``metrics_test.json`` / ``metrics_somos_test.json``. Runs of the
same k (several seeds) are averaged, with the standard deviation as error bar. Baselines (runs of other
variants, seeds averaged) are drawn as horizontal lines, as the paper compares every k with them; the
paper's own DistilMOS value at k=200 is marked when the upstream is one of Table 1's backbones.

Writes ``<out>.png`` and ``<out>.csv`` (one row per k and per baseline).
"""

import argparse
import csv
import json
import math
import os
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from paper_table1 import BACKBONES, PAPER_TABLE1  # noqa: E402 (beside this script)

from distilmos import registry  # noqa: E402

# panel column -> (metrics file split, metric key, title)
PANELS = {
    "bvcc_utt_SRCC": ("test", "utt_SRCC", "BVCC utterance-level SRCC"),
    "bvcc_sys_SRCC": ("test", "sys_SRCC", "BVCC system-level SRCC"),
    "somos_utt_SRCC": ("somos_test", "utt_SRCC", "SOMOS utterance-level SRCC (zero-shot)"),
}
BACKBONE_NAMES = {hub: name for name, hub in BACKBONES.items()}


class SweepError(ValueError):
    """An experiment folder that cannot be part of the plot; the message names it."""


def read_run(expdir):
    """``(info, {column: value})`` of one experiment folder; metrics that are missing or null are left out."""
    info_path = os.path.join(expdir, "info.json")
    if not os.path.isfile(info_path):
        raise SweepError(f"{expdir}: no info.json (not a run.sh experiment folder, or stage 3 never started)")
    with open(info_path) as handle:
        info = json.load(handle)
    values = {}
    for column, (split, key, _) in PANELS.items():
        path = os.path.join(expdir, f"metrics_{split}.json")
        if os.path.isfile(path):
            with open(path) as handle:
                value = json.load(handle).get(key)
            if value is not None and math.isfinite(float(value)):
                values[column] = float(value)
    return info, values


def _summary(runs):
    """Mean, standard deviation and count per column over a list of ``{column: value}``."""
    out = {}
    for column in PANELS:
        values = [r[column] for r in runs if column in r]
        out[column] = statistics.fmean(values) if values else None
        out[column + "_std"] = statistics.stdev(values) if len(values) > 1 else None
        out[column + "_n"] = len(values)
    return out


def collect(expdirs, baselines=()):
    """``(sweep rows sorted by k, baseline rows, upstream)``; each row holds means, stds and counts."""
    by_k, upstreams = defaultdict(list), set()
    for expdir in expdirs:
        info, values = read_run(expdir)
        if info.get("variant") != "distilmos":
            raise SweepError(
                f"{expdir}: variant {info.get('variant')!r}; the sweep takes distilmos runs "
                "(give other variants with --baselines)"
            )
        upstreams.add(info["upstream"])
        by_k[int(info["n_clusters"])].append(values)
    if len(upstreams) > 1:
        raise SweepError(f"the sweep mixes upstreams {sorted(upstreams)}; plot one upstream at a time")
    sweep = [
        dict(model=registry.label("distilmos"), k=k, n_runs=len(runs), **_summary(runs))
        for k, runs in sorted(by_k.items())
    ]
    by_variant = defaultdict(list)
    for expdir in baselines:
        info, values = read_run(expdir)
        by_variant[info["variant"]].append(values)
    base = [
        dict(model=registry.label(variant), k=None, n_runs=len(runs), **_summary(runs))
        for variant, runs in by_variant.items()
    ]
    return sweep, base, (upstreams.pop() if upstreams else None)


def write_csv(path, sweep, base):
    """One row per k, then one per baseline (``k`` empty)."""
    fields = ["model", "k", "n_runs"] + [c + s for c in PANELS for s in ("", "_std")]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(sweep + base)


def plot(path, sweep, base, upstream=None):
    """Three panels like the paper's Fig. 2, with baselines as horizontal lines."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    paper = PAPER_TABLE1.get((BACKBONE_NAMES.get(upstream), registry.label("distilmos")), {})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (column, (_, _, title)) in zip(axes, PANELS.items()):
        points = [(r["k"], r[column], r[column + "_std"] or 0.0) for r in sweep if r[column] is not None]
        if points:
            ks, means, stds = zip(*points)
            ax.errorbar(
                ks,
                means,
                yerr=stds if any(stds) else None,
                marker="o",
                capsize=3,
                color=colors[0],
                label=registry.label("distilmos"),
            )
        for i, row in enumerate(base):
            if row[column] is not None:
                ax.axhline(row[column], ls="--", lw=1.2, color=colors[(i + 1) % len(colors)], label=row["model"])
        if column in paper:
            ax.plot([200], [paper[column]], marker="*", ms=12, ls="none", color="black", label="paper, DistilMOS k=200")
        ax.set(title=title, xlabel="number of clusters k", ylabel="SRCC")
        if sweep:
            ax.set_xticks([r["k"] for r in sweep])
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # a line missing from the first panel (no value there) still gets a legend entry
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"Effect of the number of clusters k ({BACKBONE_NAMES.get(upstream, upstream or '?')})")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expdirs", nargs="+", required=True, help="distilmos runs of one upstream, any k and seeds")
    parser.add_argument("--baselines", nargs="*", default=[], help="runs of other variants: horizontal reference lines")
    parser.add_argument("--out", required=True, help="output prefix: writes <out>.png and <out>.csv")
    args = parser.parse_args(argv)
    try:
        sweep, base, upstream = collect(args.expdirs, args.baselines)
    except SweepError as exc:
        sys.exit(f"error: {exc}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_csv(args.out + ".csv", sweep, base)
    plot(args.out + ".png", sweep, base, upstream)
    for row in sweep + base:
        label = f"k={row['k']}" if row["k"] is not None else row["model"]
        cells = " ".join(f"{c} {row[c]:.3f}" if row[c] is not None else f"{c} -" for c in PANELS)
        print(f"{label:>24} (n={row['n_runs']}): {cells}")
    print(f"written: {args.out}.png {args.out}.csv")


if __name__ == "__main__":
    main()
