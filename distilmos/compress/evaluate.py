"""Predictor files on test lists, in-domain and out-of-domain: metrics, CPU speed and size, one table and one
plot (SRCC vs parameters).

    python -m distilmos.compress.evaluate --models teacher=t.pt student_xs=xs.pt ... \\
        --tests bvcc_test=data/bvcc/test.csv --ood somos_test=data/somos/test.csv \\
        --mosbench exp/mosbench_sets.json --out_dir exp/eval

``--tests`` are the in-domain test lists (the corpus the teacher and the students learnt from), ``--ood``
and ``--mosbench`` the out-of-domain ones: the latter every test set of a manifest that
``distilmos-prep --roots`` wrote from a roots file (each MOS-Bench corpus present, prepared
by its reader in :mod:`distilmos.corpora`), named by its key (``<corpus>_<split>``).

Per model and test list: ``<out_dir>/<model>/metrics_<test>.json`` and ``predictions_<test>.csv``
(:mod:`distilmos.eval.results`). Speed: utterances per second of CPU time scoring the first test list with one
thread (batches as the predictor forms them; CPU time, so that other work on the machine does not count).
Parameters: everything in the predictor's network (upstream, featurizer, model). Then ``table.csv`` /
``table.json`` (one row per model, every metric of every list, and the means over the out-of-domain lists,
``ood_mean/<metric>``), ``table.md`` (utterance and system SRCC of each in-domain list and the
out-of-domain means), ``ood.md`` (utterance SRCC of each out-of-domain list) and ``srcc_vs_params.png``
(utterance SRCC against parameters, log x axis: one panel per in-domain list and one for the
out-of-domain mean). The ``distillmos`` package's released student is added as a reference row when it is
installed (its shipped weights; no training here).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time

import torch

from distilmos.compress.cli import step_parser
from distilmos.errors import ToolkitError, reports_errors
from distilmos.eval.metrics import compute_metrics
from distilmos.eval.results import write_results
from distilmos.fileio import atomic_write

COLUMNS = ("params", "utts_per_s")
METRICS = ("utt_SRCC", "utt_LCC", "utt_MSE", "sys_SRCC", "sys_LCC", "sys_MSE")
#: the out-of-domain lists' means (table column prefix and plot panel)
OOD_MEAN = "ood_mean"


def _parse_pairs(items, what: str) -> dict:
    pairs = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ToolkitError(f"{what} {item!r}: expected NAME=PATH")
        pairs[name] = path
    return pairs


def mosbench_sets(manifest: str) -> dict:
    """``{key: data list}`` of the test sets of a MOS-Bench manifest (``distilmos-prep --roots``)."""
    try:
        with open(manifest, encoding="utf-8") as handle:
            sets = json.load(handle)["sets"]
        return {entry["key"]: entry["csv"] for entry in sets}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolkitError(
            f"{manifest}: not a MOS-Bench manifest ({exc}); write one with python "
            "distilmos-prep --roots ROOTS --out_dir D --manifest M"
        ) from exc


def _rows(path: str) -> list:
    from distilmos.data.datalist import read_datalist

    return [(u.sample_id, u.system_id, u.wav_path, float(u.score)) for u in read_datalist(path, check_audio=False)]


def score_list(score_paths, rows: list) -> tuple:
    """``(metrics, prediction rows, CPU seconds)`` of a scoring function over a test list."""
    start = time.process_time()
    preds = score_paths([r[2] for r in rows])
    seconds = time.process_time() - start
    ok = [(r, p) for r, p in zip(rows, preds) if p is not None and math.isfinite(p)]
    metrics = compute_metrics([r[3] for r, _ in ok], [p for _, p in ok], [r[1] for r, _ in ok])
    return metrics, [(r[0], r[1], r[3], p) for r, p in ok], seconds


def predictor_scorer(path: str):
    """``(score_paths, parameters)`` of a predictor file (or any model reference: hf://, peer://) on the CPU."""
    from distilmos.predictor import load

    predictor = load(path, device="cpu")
    params = predictor.pipeline.num_parameters()
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


def evaluate(models: dict, tests: dict, out_dir: str, reference: bool = True, ood: dict | None = None) -> list:
    """Score every model on every test list, in-domain (``tests``) and out-of-domain (``ood``); write the
    per-model results, the table and the plot."""
    torch.set_num_threads(1)
    ood = dict(ood or {})
    clash = sorted(set(tests) & set(ood))
    if clash:
        raise ToolkitError(f"test list name(s) {clash} given both in-domain and out-of-domain; name each once")
    test_rows = {name: _rows(path) for name, path in {**tests, **ood}.items()}
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
            for key in METRICS:
                row[f"{test}/{key}"] = metrics[key]
        if ood:
            for key in METRICS:
                row[f"{OOD_MEAN}/{key}"] = _mean(row[f"{test}/{key}"] for test in ood)
        table.append(row)
        print(f"{name}: {params} parameters, {row['utts_per_s']:.1f} utt/s", file=sys.stderr)
    write_table(table, out_dir, list(tests), list(ood))
    plot(table, list(tests) + ([OOD_MEAN] if ood else []), os.path.join(out_dir, "srcc_vs_params.png"))
    return table


def _mean(values) -> float:
    """The mean of the finite values (nan when none is)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.3f}"
    return str(value)


def _markdown(table: list, columns: list) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) for k in columns) + " |" for row in table]
    return "\n".join(lines) + "\n"


def write_table(table: list, out_dir: str, tests: list | None = None, ood: list | None = None) -> None:
    """``table.csv`` (every column), ``table.md`` (one row per model: size, speed, utterance and system
    SRCC of each in-domain list ``tests`` and the means over the out-of-domain lists ``ood``; every column
    when neither is given) and, with out-of-domain lists, ``ood.md`` (each one's utterance SRCC)."""
    keys = list(dict.fromkeys(k for row in table for k in row))
    with atomic_write(os.path.join(out_dir, "table.csv"), newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    shown = keys
    if tests is not None or ood is not None:
        shown = ["model", *COLUMNS] + [f"{t}/{m}" for t in tests or [] for m in ("utt_SRCC", "sys_SRCC")]
        shown += [f"{OOD_MEAN}/{m}" for m in ("utt_SRCC", "sys_SRCC")] if ood else []
    with atomic_write(os.path.join(out_dir, "table.md")) as handle:
        handle.write(_markdown(table, shown))
    print(_markdown(table, shown), end="")
    if ood:
        with atomic_write(os.path.join(out_dir, "ood.md")) as handle:
            handle.write(_markdown(table, ["model"] + [f"{t}/utt_SRCC" for t in ood] + [f"{OOD_MEAN}/utt_SRCC"]))


def plot(table: list, tests: list, path: str) -> None:
    """Utterance SRCC against parameters (log x), one marker style per family, one panel per test list (or
    the out-of-domain mean, :data:`OOD_MEAN`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tests), figsize=(5.5 * len(tests), 4.2), squeeze=False)
    # one colour per family in every panel, whichever families a panel has
    families = {
        "student": ("o", "distilled student", "C0"),
        "baseline": ("s", "labelled-only student", "C1"),
        "pruned": ("^", "pruned teacher", "C2"),
        "teacher": ("*", "teacher", "C3"),
        "distillmos": ("D", "distillmos package", "C4"),
    }
    for ax, test in zip(axes[0], tests):
        for family, (marker, label, colour) in families.items():
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
                color=colour,
                linestyle="-" if len(points) > 1 else "none",
                markersize=10 if family == "teacher" else 6,
            )
            for x, y, model in points:  # the size (student) or level (pruned_<pct>) beside each point
                tag = model.partition("_")[2]
                if tag and family in ("student", "baseline", "pruned"):
                    tag = f"{tag.lstrip('0') or '0'} %" if family == "pruned" and tag.isdigit() else tag
                    ax.annotate(tag, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color=colour)
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("utterance SRCC")
        ax.set_title("out-of-domain mean" if test == OOD_MEAN else test)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


@reports_errors
def main(argv=None) -> int:
    parser = step_parser("evaluate", __doc__)
    parser.add_argument(
        "--models",
        nargs="+",
        required=True,
        help="NAME=predictor.pt (name prefixes set the plot family: teacher, student_*, baseline_*, pruned_*)",
    )
    parser.add_argument(
        "--tests", nargs="+", required=True, help="in-domain NAME=data list CSV; the first one is timed"
    )
    parser.add_argument("--ood", nargs="+", default=[], help="out-of-domain NAME=data list CSV")
    parser.add_argument(
        "--mosbench",
        help="out-of-domain: every test set of this MOS-Bench manifest "
        "(distilmos-prep --roots ROOTS --out_dir D --manifest M)",
    )
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--no_reference", action="store_true", help="leave the distillmos package out")
    args = parser.parse_args(argv)
    tests, ood = _parse_pairs(args.tests, "--tests"), _parse_pairs(args.ood, "--ood")
    for key, path in (mosbench_sets(args.mosbench) if args.mosbench else {}).items():
        if key in tests:  # the corpus the models learnt from, also in the roots file: in-domain
            print(f"{args.mosbench}: {key} is an in-domain test list (--tests); evaluated as such", file=sys.stderr)
        elif key in ood:
            raise ToolkitError(f"--ood {key}: also a test set of {args.mosbench}; give it once")
        else:
            ood[key] = path
    table = evaluate(
        _parse_pairs(args.models, "--models"), tests, args.out_dir, reference=not args.no_reference, ood=ood
    )
    with atomic_write(os.path.join(args.out_dir, "table.json")) as handle:
        json.dump(table, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
