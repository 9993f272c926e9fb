#!/usr/bin/env python
"""The MoE-MOS ablation's table and plots (run_moe_ablation.sh calls it).

    python local/moe_ablation.py --runs 1:cls:exp/A 1:nocls:exp/B 4:cls:exp/C ... --out exp/moe_ablation

Each run is ``N:TASK:EXPDIR`` (TASK ``cls`` or ``nocls``); an experiment folder holds ``metrics_test.json``
(BVCC test) and ``metrics_val_best.json`` (the validation at the best checkpoint, with MoE-MOS's expert
usage, gate entropy and system accuracy). Runs of the same N and task (several seeds) are averaged.

Writes ``<out>.md`` and ``<out>.csv`` (one row per N and task), ``<out>.png`` (utterance and system SRCC
against N, one line per task) and ``<out>_usage.png`` (expert usage of the best run by validation
utterance SRCC), and prints the Markdown table.
"""

import argparse
import math
import os
import statistics
from collections import defaultdict

from table_files import AblationError, read_json, write_table

TASKS = {"cls": "with classification", "nocls": "without classification"}
COLUMNS = [
    "test_utt_SRCC",
    "test_sys_SRCC",
    "test_utt_LCC",
    "test_sys_LCC",
    "test_utt_MSE",
    "test_sys_MSE",
    "val_utt_SRCC",
    "val_sys_acc",
    "val_gate_entropy",
    "val_top_usage",
]


def parse_run(spec: str):
    """``(n_experts, task, expdir)`` of ``N:TASK:EXPDIR``."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in TASKS:
        raise AblationError(f"--runs {spec!r}: expected N:TASK:EXPDIR with TASK one of {', '.join(TASKS)}")
    return int(parts[0]), parts[1], parts[2]


def read_run(expdir: str) -> dict:
    """The ablation's values of one experiment folder, and its expert usage at the best checkpoint."""
    test = read_json(os.path.join(expdir, "metrics_test.json"))
    val = read_json(os.path.join(expdir, "metrics_val_best.json"))
    usage = [val[k] for k in sorted((k for k in val if k.startswith("expert_usage_")), key=lambda k: int(k[13:]))]
    values = {f"test_{k}": test.get(k) for k in ("utt_SRCC", "sys_SRCC", "utt_LCC", "sys_LCC", "utt_MSE", "sys_MSE")}
    values.update(
        val_utt_SRCC=val.get("utt_SRCC"),
        val_sys_acc=val.get("sys_acc"),
        val_gate_entropy=val.get("gate_entropy"),
        val_top_usage=max(usage) if usage else None,
    )
    return {"values": values, "usage": usage, "step": val.get("step"), "expdir": expdir}


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(values) if values else None


def collect(specs):
    """``(rows, runs)``: one averaged row per (N, task) in N order, and every run read."""
    groups = defaultdict(list)
    runs = []
    for spec in specs:
        n, task, expdir = parse_run(spec)
        run = dict(read_run(expdir), n=n, task=task)
        groups[(n, task)].append(run)
        runs.append(run)
    rows = []
    for n, task in sorted(groups, key=lambda key: (key[0], list(TASKS).index(key[1]))):
        members = groups[(n, task)]
        row = {"n_experts": n, "task": task, "n_runs": len(members)}
        row.update({c: _mean([m["values"][c] for m in members]) for c in COLUMNS})
        rows.append(row)
    return rows, runs


def markdown(rows) -> str:
    def cell(value):
        return "–" if value is None else f"{value:.3f}"

    lines = [
        "| N experts | task | BVCC test utt SRCC | BVCC test sys SRCC | utt LCC | sys LCC | utt MSE | sys MSE | "
        "val utt SRCC | val system acc | gate entropy | top expert usage |",
        "|" + "---|" * 12,
    ]
    for row in rows:
        runs = f" (n={row['n_runs']})" if row["n_runs"] > 1 else ""
        lines.append(
            f"| {row['n_experts']} | {TASKS[row['task']]}{runs} | " + " | ".join(cell(row[c]) for c in COLUMNS) + " |"
        )
    return (
        "\n".join(lines) + "\n\nValidation columns are at each run's best checkpoint (by val utterance SRCC); "
        "gate entropy in nats (log N when every expert gets the same weight).\n"
    )


def plot(rows, runs, out: str) -> str:
    """``<out>.png`` (SRCC against N) and ``<out>_usage.png`` (the best run's expert usage); the best run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, key, title in zip(axes, ("test_utt_SRCC", "test_sys_SRCC"), ("utterance SRCC", "system SRCC")):
        for task, label in TASKS.items():
            points = [(r["n_experts"], r[key]) for r in rows if r["task"] == task and r[key] is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["n_experts"] for r in rows}))
        ax.set_xticklabels([str(n) for n in sorted({r["n_experts"] for r in rows})])
        ax.set_xlabel("experts N")
        ax.set_title(f"BVCC test {title}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out + ".png", dpi=120)
    plt.close(fig)

    scored = [r for r in runs if r["values"]["val_utt_SRCC"] is not None]
    best = max(scored, key=lambda r: r["values"]["val_utt_SRCC"]) if scored else runs[0]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    usage = best["usage"] or [1.0]
    ax.bar(range(len(usage)), usage)
    ax.axhline(1.0 / len(usage), color="grey", linestyle="--", label="balanced")
    ax.set_xticks(range(len(usage)))
    ax.set_xlabel("expert")
    ax.set_ylabel("mean gate (validation)")
    ax.set_title(f"best run: N={best['n']} {best['task']} (step {best['step']})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out + "_usage.png", dpi=120)
    plt.close(fig)
    return best["expdir"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="N:TASK:EXPDIR per run (TASK cls or nocls)")
    parser.add_argument("--out", required=True, help="output prefix: <out>.md .csv .png _usage.png")
    args = parser.parse_args(argv)
    try:
        rows, runs = collect(args.runs)
    except AblationError as exc:
        parser.exit(2, f"moe_ablation.py: error: {exc}\n")
    text = markdown(rows)
    write_table(args.out, text, rows, ["n_experts", "task", "n_runs"] + COLUMNS)
    best = plot(rows, runs, args.out)
    print(text)
    print(f"expert usage of the best run ({best}): {args.out}_usage.png")
    print(f"written: {args.out}.md {args.out}.csv {args.out}.png {args.out}_usage.png")


if __name__ == "__main__":
    main()
