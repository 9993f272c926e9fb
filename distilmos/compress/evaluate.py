"""Predictor files on test lists: metrics, CPU speed and size, one table and one plot (SRCC vs parameters).

    python -m distilmos.compress.evaluate --models teacher=t.pt student_xs=xs.pt ... \\
        --tests bvcc_test=data/bvcc/test.csv somos_test=data/somos/test.csv --out_dir exp/eval

Per model and test list: ``<out_dir>/<model>/metrics_<test>.json`` and ``predictions_<test>.csv``
(:mod:`distilmos.eval.results`). Speed: utterances per second scoring the first test list on the CPU with one
thread (batches as the predictor forms them). Parameters: everything in the predictor's network (upstream,
featurizer, model). Then ``table.md`` / ``table.csv`` (one row per model) and ``srcc_vs_params.png``
(utterance SRCC on each test list against parameters, log x axis). The ``distillmos`` package's released
student is added as a reference row when it is installed (its shipped weights; no training here).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time

import torch

from distilmos.errors import ToolkitError
from distilmos.eval.metrics import compute_metrics
from distilmos.eval.results import write_results
from distilmos.fileio import atomic_write

COLUMNS = ("params", "utts_per_s")


def _parse_pairs(items, what: str) -> dict:
    pairs = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ToolkitError(f"{what} {item!r}: expected NAME=PATH")
        pairs[name] = path
    return pairs


def _rows(path: str) -> list:
    from distilmos.data.datalist import read_datalist

    return [(u.sample_id, u.system_id, u.wav_path, float(u.score)) for u in read_datalist(path, check_audio=False)]


def score_list(score_paths, rows: list) -> tuple:
    """``(metrics, prediction rows, seconds)`` of a scoring function over a test list."""
    start = time.perf_counter()
    preds = score_paths([r[2] for r in rows])
    seconds = time.perf_counter() - start
    ok = [(r, p) for r, p in zip(rows, preds) if p is not None and math.isfinite(p)]
    metrics = compute_metrics([r[3] for r, _ in ok], [p for _, p in ok], [r[1] for r, _ in ok])
    return metrics, [(r[0], r[1], r[3], p) for r, p in ok], seconds


def predictor_scorer(path: str):
    """``(score_paths, parameters)`` of a predictor file on the CPU."""
    from distilmos.predictor import load

    predictor = load(path, device="cpu")
    params = sum(p.numel() for p in predictor.pipeline.parameters())
    return (lambda paths: predictor.predict(paths=paths, on_error="nan")), params


def distillmos_scorer():
    """``(score_paths, parameters)`` of the ``distillmos`` package's model, or None when not installed."""
    try:
        import distillmos
    except ImportError:
        return None
    from distilmos.data.audio import load_audio

    model = distillmos.ConvTransformerSQAModel().eval()

    def score(paths):
        with torch.no_grad():
            return [float(model(load_audio(p)[None])) for p in paths]

    return score, sum(p.numel() for p in model.parameters())


def evaluate(models: dict, tests: dict, out_dir: str, reference: bool = True) -> list:
    """Score every model on every test list; write the per-model results, the table and the plot."""
    torch.set_num_threads(1)
    test_rows = {name: _rows(path) for name, path in tests.items()}
    scorers = {name: (lambda p=path: predictor_scorer(p)) for name, path in models.items()}
    if reference:
        scorers["distillmos (package)"] = distillmos_scorer
    table = []
    for name, make in scorers.items():
        made = make()
        if made is None:
            print(f"{name}: not installed; left out", file=sys.stderr)
            continue
        score_paths, params = made
        row = {"model": name, "params": params}
        for test, rows in test_rows.items():
            metrics, preds, seconds = score_list(score_paths, rows)
            write_results(os.path.join(out_dir, name.replace(" ", "_")), test, metrics, preds)
            if test == next(iter(test_rows)):
                row["utts_per_s"] = len(rows) / seconds
            for key in ("utt_SRCC", "utt_LCC", "utt_MSE", "sys_SRCC", "sys_LCC", "sys_MSE"):
                row[f"{test}/{key}"] = metrics[key]
        table.append(row)
        print(f"{name}: {params} parameters, {row['utts_per_s']:.1f} utt/s", file=sys.stderr)
    write_table(table, out_dir)
    plot(table, list(test_rows), os.path.join(out_dir, "srcc_vs_params.png"))
    return table


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.3f}"
    return str(value)


def write_table(table: list, out_dir: str) -> None:
    """``table.csv`` and ``table.md``: one row per model."""
    keys = list(dict.fromkeys(k for row in table for k in row))
    with atomic_write(os.path.join(out_dir, "table.csv"), newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |" for row in table]
    with atomic_write(os.path.join(out_dir, "table.md")) as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(table: list, tests: list, path: str) -> None:
    """Utterance SRCC against parameters (log x), one marker style per family, one panel per test list."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tests), figsize=(5.5 * len(tests), 4.2), squeeze=False)
    families = {
        "student": ("o", "distilled student"),
        "baseline": ("s", "labelled-only student"),
        "pruned": ("^", "pruned teacher"),
        "teacher": ("*", "teacher"),
        "distillmos": ("D", "distillmos package"),
    }
    for ax, test in zip(axes[0], tests):
        for family, (marker, label) in families.items():
            points = sorted(
                (r["params"], r.get(f"{test}/utt_SRCC"), r["model"]) for r in table if r["model"].startswith(family)
            )
            points = [p for p in points if p[1] is not None and math.isfinite(p[1])]
            if not points:
                continue
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker=marker,
                label=label,
                linestyle="-" if len(points) > 1 else "none",
                markersize=10 if family == "teacher" else 6,
            )
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("utterance SRCC")
        ax.set_title(test)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m distilmos.compress.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models",
        nargs="+",
        required=True,
        help="NAME=predictor.pt (name prefixes set the plot family: teacher, student_*, baseline_*, pruned_*)",
    )
    parser.add_argument("--tests", nargs="+", required=True, help="NAME=data list CSV; the first one is timed")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--no_reference", action="store_true", help="leave the distillmos package out")
    args = parser.parse_args(argv)
    try:
        table = evaluate(
            _parse_pairs(args.models, "--models"),
            _parse_pairs(args.tests, "--tests"),
            args.out_dir,
            reference=not args.no_reference,
        )
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with atomic_write(os.path.join(args.out_dir, "table.json")) as handle:
        json.dump(table, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
