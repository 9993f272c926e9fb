#!/usr/bin/env python
"""The steps of egs/mosbench/run.sh: prepare the corpora present, resolve the model, score every test
set, write the table. Each step is a subcommand, so run.sh can skip finished ones.

    python local/benchmark.py prep  --roots roots.yaml --datadir data --manifest exp/M/sets.json
    python local/benchmark.py model --model M --outdir exp/M            # prints the predictor file
    python local/benchmark.py score --model P --manifest exp/M/sets.json --outdir exp/M [--device cuda]
    python local/benchmark.py table --manifest exp/M/sets.json --outdir exp/M
    python local/benchmark.py combine --runs LABEL=DIR ... --out exp/upstreams   # one row per run

Results per test set ``<corpus>_<split>``: ``metrics_<corpus>_<split>.json`` and
``predictions_<corpus>_<split>.csv``, the formats of ``run_downstream.py -m evaluate`` (run.sh stage 4).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

from distilmos.errors import ToolkitError

LEVELS = ("utt", "sys")
METRICS = ("MSE", "LCC", "SRCC", "KTAU")
COLUMNS = [f"{level}_{m}" for level in LEVELS for m in METRICS]


class BenchmarkError(ToolkitError, ValueError):
    """A roots file, model or manifest the benchmark cannot use; the message names it."""


# ---- prep -----------------------------------------------------------------------------------------


def read_roots(path: str) -> dict[str, str | None]:
    """``{corpus: root or None}`` from a YAML mapping; relative roots are taken from the file's folder."""
    import yaml

    from distilmos import corpora

    if not os.path.isfile(path):
        raise BenchmarkError(
            f"{path}: no such roots file; write one mapping corpus names to their folders "
            f"(see egs/mosbench/conf/roots.example.yaml); corpora: {', '.join(corpora.CORPORA)}"
        )
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path}: expected a mapping 'corpus: folder', got {type(data).__name__}")
    roots = {}
    for key, value in data.items():
        name = corpora.corpus(str(key)).name  # an unknown name is an error listing the known ones
        if value in (None, ""):
            roots[name] = None
        else:
            value = os.path.expanduser(str(value))
            roots[name] = value if os.path.isabs(value) else os.path.join(os.path.dirname(os.path.abspath(path)), value)
    return roots


def prep(roots_path: str, datadir: str, manifest: str, only: list[str] | None = None) -> dict:
    """Prepare every corpus of the roots file that is present (stamped: a done one is kept) and write the
    manifest: the test sets to score and the corpora skipped, with why."""
    from distilmos import corpora

    roots = read_roots(roots_path)
    names = [corpora.corpus(n).name for n in only] if only else list(corpora.CORPORA)
    sets, skipped = [], []
    for name in names:
        spec = corpora.CORPORA[name]
        root = roots.get(name)
        if not spec.test_splits:  # a training set of the benchmark (URGENT 2024 MOS): nothing to score
            skipped.append({"corpus": name, "reason": "a training set: it ships no test split"})
            continue
        if name not in roots:
            skipped.append({"corpus": name, "reason": f"not in {os.path.basename(roots_path)}"})
            continue
        if root is None or not os.path.isdir(root):
            skipped.append({"corpus": name, "reason": "no root given" if root is None else f"{root} not found"})
            continue
        out_dir = os.path.join(datadir, name)
        counts = corpora.prepare(name, root, out_dir)
        state = "kept (prepared before)" if all(v is None for v in counts.values()) else "prepared"
        print(f"{name}: {state} -> {out_dir} ({', '.join(counts)})", file=sys.stderr)
        for split in spec.test_splits:
            if split in counts:
                sets.append(
                    {
                        "name": f"{name}/{split}",
                        "key": f"{name}_{split}",
                        "corpus": name,
                        "split": split,
                        "csv": os.path.abspath(os.path.join(out_dir, f"{split}.csv")),
                    }
                )
            else:
                skipped.append({"corpus": f"{name}/{split}", "reason": "split not in this copy of the corpus"})
    from distilmos.fileio import atomic_write

    result = {"roots": os.path.abspath(roots_path), "sets": sets, "skipped": skipped}
    with atomic_write(manifest) as handle:
        json.dump(result, handle, indent=1)
    for entry in skipped:
        print(f"skipped: {entry['corpus']} ({entry['reason']})", file=sys.stderr)
    if not sets:
        raise BenchmarkError(f"{roots_path}: none of its corpora is present; nothing to evaluate")
    return result


# ---- model ----------------------------------------------------------------------------------------


def resolve_model(model: str, outdir: str) -> str:
    """A predictor file for ``model``: itself when it is one, else an experiment checkpoint exported to
    ``<outdir>/model.pt`` (kept when newer than the checkpoint)."""
    from distilmos.predictor.export import export
    from distilmos.predictor.fileformat import PredictorFileError, read_predictor

    if not os.path.isfile(model):
        raise BenchmarkError(f"{model}: no such model (a predictor file or an experiment checkpoint)")
    try:
        read_predictor(model)
        return os.path.abspath(model)
    except PredictorFileError:
        pass
    out = os.path.join(outdir, "model.pt")
    if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(model):
        print(f"{out}: exported before from {model}; kept", file=sys.stderr)
        return os.path.abspath(out)
    print(f"exporting {model} -> {out}", file=sys.stderr)
    export(model, out)
    return os.path.abspath(out)


# ---- score ----------------------------------------------------------------------------------------


def score(
    model: str, manifest: str, outdir: str, *, device: str = "auto", batch_size: int = 16, overwrite: bool = False
) -> None:
    """Score every test set of the manifest with the predictor file (its own batching and windowing),
    skipping sets whose metrics file exists unless ``overwrite``."""
    from distilmos.data.datalist import read_datalist
    from distilmos.eval.metrics import compute_metrics
    from distilmos.eval.results import write_results
    from distilmos.predictor import load

    sets = read_manifest(manifest)["sets"]
    todo = [s for s in sets if overwrite or not os.path.isfile(os.path.join(outdir, f"metrics_{s['key']}.json"))]
    for entry in sets:
        if entry not in todo:
            print(f"{entry['name']}: scored before; kept", file=sys.stderr)
    if not todo:
        return
    import warnings

    import torch

    # as distilmos-predict does: s3prl's upstream code warns on every run, and subnormal floats make CPU
    # matmuls several times slower without changing a score
    warnings.filterwarnings("ignore", message=r".*weight_norm.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
    torch.set_flush_denormal(True)
    predictor = load(model, device=device, batch_size=batch_size)
    for entry in todo:
        utts = read_datalist(entry["csv"], check_audio=False)  # checked when prepared
        print(f"{entry['name']}: scoring {len(utts)} utterances", file=sys.stderr)
        results = predictor.score_files([u.wav_path for u in utts], progress=True)
        failed = [r for r in results if not r.ok]
        kept = [(u, r) for u, r in zip(utts, results) if r.ok]
        if not kept:
            raise BenchmarkError(f"{entry['csv']}: no file could be scored: {failed[0].error}")
        metrics = compute_metrics([u.score for u, _ in kept], [r.pred for _, r in kept], [u.system_id for u, _ in kept])
        if failed:  # counted in the metrics file, and said aloud: a benchmark over fewer files is another benchmark
            metrics["n_failed"] = len(failed)
            for result in failed:
                print(f"  could not score: {result.error}", file=sys.stderr)
        write_results(outdir, entry["key"], metrics, [(u.sample_id, u.system_id, u.score, r.pred) for u, r in kept])
        print(
            f"{entry['name']}: utt SRCC {metrics['utt_SRCC']:.3f}, sys SRCC {metrics['sys_SRCC']:.3f}", file=sys.stderr
        )


# ---- table ----------------------------------------------------------------------------------------


def read_manifest(path: str) -> dict:
    if not os.path.isfile(path):
        raise BenchmarkError(f"{path}: no such manifest (run the preparation stage first)")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def collect(manifest: dict, outdir: str) -> list[dict]:
    """``[{name, metrics}]`` of the manifest's test sets; a set without its metrics file is an error."""
    rows = []
    for entry in manifest["sets"]:
        path = os.path.join(outdir, f"metrics_{entry['key']}.json")
        if not os.path.isfile(path):
            raise BenchmarkError(f"{path}: no such metrics file (run the scoring stage first)")
        with open(path, encoding="utf-8") as handle:
            rows.append({"name": entry["name"], "metrics": json.load(handle)})
    return rows


def mean_row(rows: list[dict]) -> dict:
    """The mean of each metric over the test sets where it is defined (and how many those are)."""
    means, counts = {}, {}
    for col in COLUMNS:
        values = [r["metrics"][col] for r in rows if r["metrics"].get(col) is not None]
        means[col] = sum(values) / len(values) if values else None
        counts[col] = len(values)
    means["n_utt"] = sum(r["metrics"]["n_utt"] for r in rows)
    means["n_sys"] = sum(r["metrics"]["n_sys"] for r in rows)
    return {"name": "mean", "metrics": means, "counts": counts}


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_table(manifest: dict, outdir: str, out: str, title: str) -> str:
    """``<out>.md``, ``<out>.csv`` and ``<out>.png``; return the Markdown."""
    from distilmos.fileio import atomic_write

    rows = collect(manifest, outdir)
    mean = mean_row(rows)
    header = ["test set", "n_utt", "n_sys"] + COLUMNS
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows + [mean]:
        m = row["metrics"]
        name = f"**{row['name']}**" if row is mean else row["name"]
        lines.append("| " + " | ".join([name, str(m["n_utt"]), str(m["n_sys"])] + [fmt(m[c]) for c in COLUMNS]) + " |")
    partial = [c for c in COLUMNS if mean["counts"][c] < len(rows)]
    if partial:
        lines += [
            "",
            "Mean over the sets where a metric is defined (n/a: fewer than two utterances or systems, "
            "or a constant side): " + ", ".join(f"{c} over {mean['counts'][c]}" for c in partial) + ".",
        ]
    if manifest["skipped"]:
        lines += ["", "Skipped (not evaluated):", ""] + [f"- {s['corpus']}: {s['reason']}" for s in manifest["skipped"]]
    markdown = "\n".join(lines) + "\n"
    with atomic_write(out + ".md") as handle:
        handle.write(markdown)
    with atomic_write(out + ".csv", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["test_set", "status", "n_utt", "n_sys"] + COLUMNS)
        for row in rows + [mean]:
            m = row["metrics"]
            writer.writerow(
                [row["name"], "evaluated", m["n_utt"], m["n_sys"]]
                + ["" if m[c] is None else repr(float(m[c])) for c in COLUMNS]
            )
        for s in manifest["skipped"]:
            writer.writerow([s["corpus"], f"skipped: {s['reason']}", "", ""] + [""] * len(COLUMNS))
    plot(rows, out + ".png", title)
    return markdown


def plot(rows: list[dict], path: str, title: str) -> None:
    """Utterance and system SRCC per test set, as grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["name"] for r in rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(names) + 2), 3.5))
    for i, level in enumerate(LEVELS):
        values = [r["metrics"][f"{level}_SRCC"] for r in rows]
        ax.bar(x + (i - 0.5) * 0.4, [np.nan if v is None else v for v in values], 0.4, label=f"{level} SRCC")
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


# ---- combine --------------------------------------------------------------------------------------


def combine(runs: list[str], out: str, metric: str = "utt_SRCC") -> str:
    """One table, one row per run (``LABEL=OUTDIR`` of a finished benchmark): ``metric`` per test set and
    the mean over them, plus the mean of every metric; ``<out>.md`` and ``<out>.csv`` (every metric of
    every set). Returns the Markdown."""
    from distilmos.fileio import atomic_write

    table = []
    for run in runs:
        label, _, folder = run.partition("=")
        if not folder:
            raise BenchmarkError(f"{run!r}: expected LABEL=BENCHMARK_FOLDER")
        manifest = read_manifest(os.path.join(folder, "sets.json"))
        rows = collect(manifest, folder)
        table.append((label, rows, mean_row(rows), manifest["skipped"]))
    names = []
    for _, rows, _, _ in table:
        names += [r["name"] for r in rows if r["name"] not in names]
    header = ["upstream"] + names + [f"mean {c}" for c in ("utt_SRCC", "sys_SRCC", "utt_LCC", "utt_MSE")]
    lines = [
        f"{metric} per test set; means over the sets each run was evaluated on",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for label, rows, mean, _ in table:
        by_name = {r["name"]: r["metrics"] for r in rows}
        cells = [fmt(by_name[n][metric]) if n in by_name else "-" for n in names]
        lines.append(
            "| "
            + " | ".join(
                [label] + cells + [fmt(mean["metrics"][c]) for c in ("utt_SRCC", "sys_SRCC", "utt_LCC", "utt_MSE")]
            )
            + " |"
        )
    skipped = sorted({f"{s['corpus']} ({s['reason']})" for *_, sk in table for s in sk})
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped)]
    markdown = "\n".join(lines) + "\n"
    with atomic_write(out + ".md") as handle:
        handle.write(markdown)
    with atomic_write(out + ".csv", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["upstream", "test_set"] + COLUMNS + ["n_utt", "n_sys"])
        for label, rows, mean, _ in table:
            for row in rows + [mean]:
                m = row["metrics"]
                writer.writerow(
                    [label, row["name"]]
                    + ["" if m[c] is None else repr(float(m[c])) for c in COLUMNS]
                    + [m["n_utt"], m["n_sys"]]
                )
    return markdown


# ---- command line ---------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prep", help="prepare the corpora present; write the manifest of test sets")
    p.add_argument("--roots", required=True)
    p.add_argument("--datadir", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--corpora", nargs="*", help="only these corpora (default: every registered one)")
    p = sub.add_parser("model", help="print the predictor file of a model (exporting a checkpoint)")
    p.add_argument("--model", required=True)
    p.add_argument("--outdir", required=True)
    p = sub.add_parser("score", help="score every test set of the manifest")
    p.add_argument("--model", required=True, help="predictor file")
    p.add_argument("--manifest", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("table", help="the table of a scored benchmark: Markdown, CSV, plot")
    p.add_argument("--manifest", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--out", help="output path without extension (default <outdir>/mosbench)")
    p.add_argument("--title", default="MOS-Bench")
    p = sub.add_parser("combine", help="one table of several benchmarks, one row each")
    p.add_argument("--runs", nargs="+", required=True, help="LABEL=BENCHMARK_FOLDER ...")
    p.add_argument("--out", required=True)
    p.add_argument("--metric", default="utt_SRCC", choices=COLUMNS)
    args = parser.parse_args(argv)
    try:
        if args.command == "prep":
            prep(args.roots, args.datadir, args.manifest, args.corpora)
        elif args.command == "model":
            print(resolve_model(args.model, args.outdir))
        elif args.command == "score":
            score(
                args.model,
                args.manifest,
                args.outdir,
                device=args.device,
                batch_size=args.batch_size,
                overwrite=args.overwrite,
            )
        elif args.command == "table":
            print(
                write_table(
                    read_manifest(args.manifest),
                    args.outdir,
                    args.out or os.path.join(args.outdir, "mosbench"),
                    args.title,
                ),
                end="",
            )
        else:
            print(combine(args.runs, args.out, args.metric), end="")
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
