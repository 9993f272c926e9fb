#!/usr/bin/env python
"""The steps of egs/mosbench/run.sh: prepare the corpora present, resolve the model, score every test
set, write the table. Each step is a subcommand, so run.sh can skip finished ones.

    python local/benchmark.py prep  --roots roots.yaml --datadir data --manifest exp/M/sets.json
    python local/benchmark.py model --model M --outdir exp/M            # prints the predictor file
    python local/benchmark.py score --model P --manifest exp/M/sets.json --outdir exp/M [--device cuda]
    python local/benchmark.py table --manifest exp/M/sets.json --outdir exp/M
    python local/benchmark.py combine --runs LABEL=DIR ... --out exp/upstreams   # one row per run
    # the leaderboard: several models, each scored into <cachedir>/<its identity>, one row each
    python local/benchmark.py models --models M1 LABEL=hf://... peer://distillmos --outdir exp/L
    python local/benchmark.py score --models_json exp/L/models.json --manifest exp/L/sets.json --cachedir exp/cache
    python local/benchmark.py board --models_json exp/L/models.json --manifest exp/L/sets.json --cachedir exp/cache \
        --out exp/L/leaderboard

A model is any reference ``distilmos-predict`` takes (a predictor file, ``hf://<owner>/<repo>/<file>``, a
``peer://`` predictor) or an experiment checkpoint (exported once). Results per test set ``<corpus>_<split>``:
``metrics_<corpus>_<split>.json`` and ``predictions_<corpus>_<split>.csv``, the formats of
``run_downstream.py -m evaluate`` (run.sh stage 4), and ``scored.json``: which model they are of (its
identity: the predictor file's sha256, or the peer's name and package version), each set's data list
sha256, files, seconds and files/s, and the machine. A set is scored again only when it was scored by
another model or from another data list (or with ``--overwrite``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import time

from distilmos.corpora.benchmark_sets import RootsError, read_roots  # noqa: F401 (also this script's API)
from distilmos.corpora.benchmark_sets import prepare_sets as prep
from distilmos.errors import ToolkitError, reports_errors

HERE = os.path.dirname(os.path.abspath(__file__))
RECORD = "scored.json"

LEVELS = ("utt", "sys")
METRICS = ("MSE", "LCC", "SRCC", "KTAU")
COLUMNS = [f"{level}_{m}" for level in LEVELS for m in METRICS]


class BenchmarkError(ToolkitError, ValueError):
    """A model or manifest the benchmark cannot use; the message names it."""


# ---- model ----------------------------------------------------------------------------------------


def resolve_model(model: str, outdir: str, name: str = "model.pt") -> str:
    """What :func:`distilmos.predictor.load` takes for ``model``: a ``peer://`` reference as it is (its package
    checked), a predictor file (an ``hf://`` one from the hub cache) as its absolute path, or an experiment
    checkpoint exported to ``<outdir>/<name>`` (kept when newer than the checkpoint)."""
    from distilmos.predictor import peers
    from distilmos.predictor.export import export
    from distilmos.predictor.fileformat import PredictorFileError, read_predictor
    from distilmos.predictor.sources import is_hub, is_peer, resolve

    if is_peer(model):
        peers.require(peers.spec(model))
        return model
    path = resolve(model)
    if not os.path.isfile(path):
        raise BenchmarkError(
            f"{model}: no such model (a predictor file, an experiment checkpoint, an hf:// file or a peer://)"
        )
    try:
        read_predictor(path)
        return os.path.abspath(path)
    except PredictorFileError:
        if is_hub(model):
            raise
    out = os.path.join(outdir, name)
    if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(model):
        print(f"{out}: exported before from {model}; kept", file=sys.stderr)
        return os.path.abspath(out)
    print(f"exporting {model} -> {out}", file=sys.stderr)
    export(model, out)
    return os.path.abspath(out)


# ---- score ----------------------------------------------------------------------------------------


def read_record(folder: str) -> dict | None:
    """``<folder>/scored.json`` (see the module docstring), or ``None``."""
    path = os.path.join(folder, RECORD)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _stale(entry: dict, folder: str, record: dict | None) -> str | None:
    """Why the set ``entry`` must be scored (again) in ``folder``, or ``None`` when its results are current."""
    from distilmos.fileio import sha256_file

    if not os.path.isfile(os.path.join(folder, f"metrics_{entry['key']}.json")):
        return "not scored"
    if record is None:  # results of a version that kept no record: kept, as it always did
        return None
    done = record["sets"].get(entry["key"])
    if done is None:
        return "no record of its scoring"
    if done["list_sha256"] != sha256_file(entry["csv"]):
        return "its data list changed"
    return None


def score(
    model: str, manifest: str, outdir: str, *, device: str = "auto", batch_size: int = 16, overwrite: bool = False
) -> dict:
    """Score every test set of the manifest with ``model`` (a predictor file or a ``peer://``; its own batching
    and windowing) into ``outdir``, keeping the sets scored before by the same model from the same data list
    unless ``overwrite``; return the record (``scored.json``)."""
    from distilmos.data.datalist import read_datalist
    from distilmos.eval.metrics import compute_metrics
    from distilmos.eval.results import write_results
    from distilmos.fileio import atomic_write, sha256_file
    from distilmos.predictor import load
    from distilmos.predictor.sources import identity

    sets = read_manifest(manifest)["sets"]
    who = identity(model)
    previous = read_record(outdir)
    record = {"model": who, "sets": {}}
    if previous is not None and previous["model"]["key"] != who["key"]:
        print(
            f"{outdir}: holds the results of another model ({previous['model']['ref']}); scoring again", file=sys.stderr
        )
        overwrite = True
    elif previous is not None:
        record = previous
    todo = []
    for entry in sets:
        why = "--overwrite" if overwrite else _stale(entry, outdir, previous)
        if why is None:
            print(f"{entry['name']}: scored before; kept", file=sys.stderr)
            continue
        if why != "not scored":
            print(f"{entry['name']}: scoring again ({why})", file=sys.stderr)
        todo.append(entry)
    if not todo:
        return record
    import warnings

    import torch

    # as distilmos-predict does: s3prl's upstream code warns on every run, and subnormal floats make CPU
    # matmuls several times slower without changing a score
    warnings.filterwarnings("ignore", message=r".*weight_norm.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
    torch.set_flush_denormal(True)
    from distilmos.eval.machine import describe_machine, machine  # as every benchmark describes its machine

    predictor = load(model, device=device, batch_size=batch_size)
    host = machine(str(predictor.device), torch.get_num_threads())
    host.pop("load_average_1min", None)  # of the moment, not of the machine: one line per machine in the table
    host = describe_machine(host)
    record.update(model=who, title=predictor.card.get("title"), parameters=predictor.pipeline.num_parameters())
    os.makedirs(outdir, exist_ok=True)
    for entry in todo:
        utts = read_datalist(entry["csv"], check_audio=False)  # checked when prepared
        print(f"{entry['name']}: scoring {len(utts)} utterances", file=sys.stderr)
        started = time.perf_counter()
        results = predictor.score_files([u.wav_path for u in utts], progress=True)
        seconds = time.perf_counter() - started
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
        record["sets"][entry["key"]] = {
            "list_sha256": sha256_file(entry["csv"]),
            "n_files": len(utts),
            "n_failed": len(failed),
            "seconds": round(seconds, 3),
            "files_per_s": len(utts) / seconds if seconds > 0 else None,
            "machine": host,
        }
        with atomic_write(os.path.join(outdir, RECORD)) as handle:  # after the results: a kill between rescores
            json.dump(record, handle, indent=1)
        print(
            f"{entry['name']}: utt SRCC {metrics['utt_SRCC']:.3f}, sys SRCC {metrics['sys_SRCC']:.3f}", file=sys.stderr
        )
    return record


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


# ---- leaderboard ----------------------------------------------------------------------------------

_LABEL = re.compile(r"^([A-Za-z0-9_.+-]+)=(.+)$")


def split_label(item: str) -> tuple[str | None, str]:
    """``LABEL=REF`` -> ``(LABEL, REF)``; a bare reference -> ``(None, REF)``."""
    match = _LABEL.match(item)
    return (match.group(1), match.group(2)) if match else (None, item)


def default_label(ref: str) -> str:
    """A row name: a peer's title (``Distill-MOS``), else the file name without its extension."""
    from distilmos.predictor import peers
    from distilmos.predictor.sources import is_hub, is_peer, parse_hub

    if is_peer(ref):
        return peers.spec(ref).title
    path = parse_hub(ref).path if is_hub(ref) else ref
    return os.path.splitext(os.path.basename(path.rstrip("/")))[0] or path


def resolve_models(items: list[str], outdir: str) -> list[dict]:
    """``[{label, ref, model, identity}]`` of the models to rank: ``model`` is what ``load`` takes (see
    :func:`resolve_model`; a checkpoint is exported to ``<outdir>/models/<label>.pt``), ``identity`` which
    model it is (:func:`distilmos.predictor.sources.identity`), its ``key`` naming its results folder. Every
    model is checked here, before any scoring."""
    from distilmos.predictor.sources import identity

    if not items:
        raise BenchmarkError("no model given: --models takes one or more references (LABEL=REF to name a row)")
    models, labels = [], set()
    for item in items:
        label, ref = split_label(item)
        label = label or default_label(ref)
        if label in labels:
            raise BenchmarkError(f"{item}: a second model named {label!r}; name each row: LABEL=REF")
        labels.add(label)
        model = resolve_model(ref, os.path.join(outdir, "models"), f"{label}.pt")
        models.append({"label": label, "ref": ref, "model": model, "identity": identity(model)})
    return models


def write_models(models: list[dict], path: str) -> None:
    from distilmos.fileio import atomic_write

    with atomic_write(path) as handle:
        json.dump(models, handle, indent=1)


def read_models(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise BenchmarkError(f"{path}: no such model list (run the model stage first)")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def score_models(models: list[dict], manifest: str, cachedir: str, **settings) -> None:
    """Score each model into ``<cachedir>/<identity key>`` (:func:`score`: what is there is kept)."""
    for entry in models:
        folder = os.path.join(cachedir, entry["identity"]["key"])
        print(f"== {entry['label']} ({entry['ref']}) -> {folder}", file=sys.stderr)
        score(entry["model"], manifest, folder, **settings)


def board_rows(models: list[dict], manifest: dict, cachedir: str) -> list[dict]:
    """One row per model: its per-set metrics, their means, parameters, files/s and machines, best first."""
    rows = []
    for entry in models:
        folder = os.path.join(cachedir, entry["identity"]["key"])
        sets = collect(manifest, folder)
        record = read_record(folder) or {"sets": {}}
        timed = [record["sets"][s["key"]] for s in manifest["sets"] if s["key"] in record["sets"]]
        seconds = sum(t["seconds"] for t in timed)
        rows.append(
            {
                "label": entry["label"],
                "ref": entry["ref"],
                "key": entry["identity"]["key"],
                "sets": {r["name"]: r["metrics"] for r in sets},
                "mean": mean_row(sets)["metrics"],
                "parameters": record.get("parameters"),
                "files_per_s": sum(t["n_files"] for t in timed) / seconds
                if len(timed) == len(sets) and seconds
                else None,
                "machines": sorted({t["machine"] for t in timed}),
            }
        )
    best = [r["mean"]["utt_SRCC"] for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (best[i] is None, -(best[i] or 0.0), i))
    return [rows[i] for i in order]


def fmt_params(value) -> str:
    if value is None:
        return "n/a"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return str(value)


def write_board(models: list[dict], manifest: dict, cachedir: str, out: str, title: str) -> str:
    """The leaderboard: ``<out>.md`` (utterance / system SRCC per test set, their means, parameters, files/s),
    ``<out>.csv`` (the same, one row per model, with the references and identities) and ``<out>.png``; return
    the Markdown."""
    from distilmos.fileio import atomic_write

    rows = board_rows(models, manifest, cachedir)
    names = [s["name"] for s in manifest["sets"]]
    header = ["model", "parameters", "files/s"] + names + ["mean utt SRCC", "mean sys SRCC"]
    lines = [
        f"# {title}",
        "",
        "Cells: utterance / system SRCC; means over the test sets; files/s: scoring speed (reading included, "
        "loading not) on the machine below. Best mean utterance SRCC first.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for row in rows:
        cells = [f"{fmt(row['sets'][n]['utt_SRCC'])} / {fmt(row['sets'][n]['sys_SRCC'])}" for n in names]
        speed = "n/a" if row["files_per_s"] is None else f"{row['files_per_s']:.3g}"
        mean = [fmt(row["mean"]["utt_SRCC"]), fmt(row["mean"]["sys_SRCC"])]
        lines.append("| " + " | ".join([row["label"], fmt_params(row["parameters"]), speed] + cells + mean) + " |")
    lines += ["", "Models: " + "; ".join(f"{r['label']} = `{r['ref']}`" for r in rows) + "."]
    machines = sorted({m for r in rows for m in r["machines"]})
    if machines:
        lines += ["", "Scored on: " + " | ".join(machines) + "."]
    if manifest["skipped"]:
        lines += [
            "",
            "Skipped (not evaluated): " + "; ".join(f"{s['corpus']} ({s['reason']})" for s in manifest["skipped"]),
        ]
    markdown = "\n".join(lines) + "\n"
    with atomic_write(out + ".md") as handle:
        handle.write(markdown)
    with atomic_write(out + ".csv", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        per_set = [f"{n}:{level}_SRCC" for n in names for level in LEVELS]
        writer.writerow(
            ["model", "ref", "identity", "parameters", "files_per_s", "mean_utt_SRCC", "mean_sys_SRCC"] + per_set
        )
        for row in rows:
            values = [row["mean"]["utt_SRCC"], row["mean"]["sys_SRCC"]]
            values += [row["sets"][n][f"{level}_SRCC"] for n in names for level in LEVELS]
            writer.writerow(
                [row["label"], row["ref"], row["key"], row["parameters"] or "", row["files_per_s"] or ""]
                + ["" if v is None else repr(float(v)) for v in values]
            )
    plot_board(rows, names, out + ".png", title)
    return markdown


def plot_board(rows: list[dict], names: list[str], path: str, title: str) -> None:
    """Left: utterance SRCC per model and test set (a heat map); right: mean utterance SRCC against parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.array(
        [[np.nan if r["sets"][n]["utt_SRCC"] is None else r["sets"][n]["utt_SRCC"] for n in names] for r in rows],
        dtype=float,
    )
    fig, (heat, scatter) = plt.subplots(
        1,
        2,
        figsize=(max(9, 0.55 * len(names) + 6), max(3.5, 0.45 * len(rows) + 2)),
        gridspec_kw={"width_ratios": [max(2, len(names)), 4]},
    )
    image = heat.imshow(grid, cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
    heat.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    heat.set_yticks(range(len(rows)), [r["label"] for r in rows], fontsize=8)
    for (i, j), value in np.ndenumerate(grid):
        if math.isfinite(value):
            heat.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
    heat.set_title("utterance SRCC per test set", fontsize=9)
    fig.colorbar(image, ax=heat, fraction=0.03)
    for row in rows:
        mean = row["mean"]["utt_SRCC"]
        if row["parameters"] and mean is not None:
            scatter.scatter(row["parameters"], mean)
            scatter.annotate(
                row["label"], (row["parameters"], mean), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    scatter.set_xscale("log")
    scatter.set_xlabel("parameters")
    scatter.set_ylabel("mean utterance SRCC")
    scatter.grid(alpha=0.3)
    scatter.set_title("accuracy against size", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


# ---- command line ---------------------------------------------------------------------------------


@reports_errors
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
    p = sub.add_parser("models", help="check and resolve several models; write their list (models.json)")
    p.add_argument("--models", nargs="+", required=True, help="REF or LABEL=REF ...")
    p.add_argument("--outdir", required=True)
    p = sub.add_parser("score", help="score every test set of the manifest")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="predictor file or peer:// (results into --outdir)")
    which.add_argument("--models_json", help="the model list (results into --cachedir/<identity>)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--outdir", help="with --model")
    p.add_argument("--cachedir", help="with --models_json")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("table", help="the table of a scored benchmark: Markdown, CSV, plot")
    p.add_argument("--manifest", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--out", help="output path without extension (default <outdir>/mosbench)")
    p.add_argument("--title", default="MOS-Bench")
    p = sub.add_parser("board", help="the leaderboard of the model list: Markdown, CSV, plot")
    p.add_argument("--models_json", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--cachedir", required=True)
    p.add_argument("--out", required=True, help="output path without extension")
    p.add_argument("--title", default="MOS-Bench leaderboard")
    p = sub.add_parser("combine", help="one table of several benchmarks, one row each")
    p.add_argument("--runs", nargs="+", required=True, help="LABEL=BENCHMARK_FOLDER ...")
    p.add_argument("--out", required=True)
    p.add_argument("--metric", default="utt_SRCC", choices=COLUMNS)
    args = parser.parse_args(argv)
    if args.command == "prep":
        prep(args.roots, args.datadir, args.manifest, args.corpora)
    elif args.command == "model":
        print(resolve_model(args.model, args.outdir))
    elif args.command == "models":
        models = resolve_models(args.models, args.outdir)
        write_models(models, os.path.join(args.outdir, "models.json"))
        for entry in models:
            print(f"{entry['label']}: {entry['ref']} ({entry['identity']['key']})", file=sys.stderr)
    elif args.command == "score":
        settings = {"device": args.device, "batch_size": args.batch_size, "overwrite": args.overwrite}
        if args.model:
            if not args.outdir:
                parser.error("score --model needs --outdir")
            score(args.model, args.manifest, args.outdir, **settings)
        else:
            if not args.cachedir:
                parser.error("score --models_json needs --cachedir")
            score_models(read_models(args.models_json), args.manifest, args.cachedir, **settings)
    elif args.command == "board":
        markdown = write_board(
            read_models(args.models_json), read_manifest(args.manifest), args.cachedir, args.out, args.title
        )
        print(markdown, end="")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
