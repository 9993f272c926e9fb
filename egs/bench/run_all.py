#!/usr/bin/env python
"""Every benchmark of egs/bench in one command, and one combined Markdown table.

    python egs/bench/run_all.py [--threads 1] [--device cpu]
        [--only tokens,train_step,predict,padding_exact,feature_cache,salf,peers,compress,score]
        [--out_dir DIR] [--json PATH] [--quick] [--SCRIPT_args "..."]

Runs, one after the other (never side by side, so that they do not slow each other):
``tokens_bench.py`` (token fit + dump), ``train_step_bench.py`` (training step per expert),
``predict_bench.py`` (exported predictor; when present), ``padding_exact_bench.py`` (the padding-exact
forward's cost and the uncapped batching's gain), ``feature_cache_bench.py`` (epochs from a feature cache
against the upstream in the loop), ``salf_bench.py`` (SALF-MOS against DistilMOS: training step and
inference), ``peers_bench.py`` (Distill-MOS and DNSMOS
beside ours; when at least one peer is installed: the ``peers`` extra, ``pip install -e '.[peers]'``),
``compress_bench.py`` (smallest student and 50 % pruned upstream against their WavLM Base-size teacher) and
``score_bench.py`` (``distilmos-predict score`` at corpus scale: shards, memory, a kill and its rerun),
each with ``--json``, then prints the machine and one table of every row: group, measure, value, unit,
target, met, runs (how many timed runs each median is of). A script that fails gets a row saying so and
makes the exit status 1; the other scripts still run.

``--quick`` runs every script in its smoke mode (tiny upstream, a few short utterances, one run): it
checks the plumbing in about a minute; its figures mean nothing. ``--SCRIPT_args`` passes more options
to one script (e.g. ``--tokens_args "--n_utts 32"``). ``--out_dir`` keeps each script's JSON and output.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time

import benchlib  # beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


#: name -> (script, options of a full run beyond the script's defaults)
SCRIPTS = {
    "tokens": (
        "tokens_bench.py",
        [
            # equal-size forward batches at every scale, so that the memory rows compare like with like;
            # the layer-at-a-time baseline runs 3 of the 12 layers (each costs the same) and is scaled up
            "--max_batch_seconds",
            "16",
            "--max_pad",
            "1",
            "--layerwise_layers",
            "1,6,12",
        ],
    ),
    "train_step": ("train_step_bench.py", []),
    "predict": ("predict_bench.py", []),
    "padding_exact": ("padding_exact_bench.py", []),
    "feature_cache": ("feature_cache_bench.py", []),
    "salf": ("salf_bench.py", []),
    "peers": ("peers_bench.py", []),
    "compress": ("compress_bench.py", []),
    "score": ("score_bench.py", []),
}
PEERS = ("distillmos", "speechmos")


def script_options(path: str) -> str:
    """The script's ``--help`` text (which options it takes)."""
    proc = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True, cwd=REPO)
    return proc.stdout


def command(name: str, args, json_path: str) -> list:
    """The command line of one script."""
    script, full = SCRIPTS[name]
    path = os.path.join(HERE, script)
    accepted = script_options(path)
    cmd = [sys.executable, path, "--json", json_path]
    if args.quick:
        cmd.append("--quick")
    else:
        cmd += full
    for option, value in (("--device", args.device), ("--threads", args.threads)):
        if value is not None and option in accepted:
            cmd += [option, str(value)]
    cmd += shlex.split(getattr(args, f"{name}_args") or "")
    return cmd


def run_script(name: str, args, out_dir: str) -> list:
    """Run one script; return its rows, or one row saying why there are none."""
    json_path = os.path.join(out_dir, f"{name}.json")
    cmd = command(name, args, json_path)
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(f"[run_all] {name}: {' '.join(shlex.quote(c) for c in cmd[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with open(os.path.join(out_dir, f"{name}.out"), "w") as out, open(os.path.join(out_dir, f"{name}.err"), "w") as err:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=err)
    elapsed = time.perf_counter() - started
    print(f"[run_all] {name}: exit {proc.returncode} after {elapsed:.0f} s", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        with open(os.path.join(out_dir, f"{name}.err")) as handle:
            tail = [line.strip() for line in handle.read().strip().splitlines()[-3:]]
        reason = f"exit {proc.returncode}: " + (" / ".join(tail) or "no message")
        return [benchlib.row(name, "failed", reason.replace("|", "/"), "")], False
    with open(json_path, encoding="utf-8") as handle:
        rows = benchlib.check_rows(json.load(handle), json_path)
    return rows, True


def peers_installed() -> list:
    return [p for p in PEERS if importlib.util.find_spec(p) is not None]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only", default=",".join(SCRIPTS), help=f"which benchmarks (default all: {','.join(SCRIPTS)})"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch/OpenMP threads of every script (default: the environment's OMP_NUM_THREADS, "
        "else the libraries' own)",
    )
    parser.add_argument("--device", default=None, help="device of every script that takes one (default: theirs, cpu)")
    parser.add_argument("--out_dir", default=None, help="keep each script's JSON, stdout and stderr here")
    parser.add_argument("--json", default=None, help="write {machine, rows} here")
    parser.add_argument("--quick", action="store_true", help="every script in its smoke mode (figures mean nothing)")
    for name in SCRIPTS:
        parser.add_argument(f"--{name}_args", default="", help=f"more options for {SCRIPTS[name][0]}")
    args = parser.parse_args(argv)
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in SCRIPTS]
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    if args.threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        args.threads = int(os.environ["OMP_NUM_THREADS"])

    info = benchlib.machine(args.device or "cpu", benchlib.set_threads(args.threads))
    rows, ok = [], True
    started = time.perf_counter()
    with benchlib.scratch(args.out_dir) as out_dir:
        for name in wanted:
            if name == "predict" and not os.path.isfile(os.path.join(HERE, SCRIPTS[name][0])):
                rows.append(benchlib.row(name, "skipped", f"{SCRIPTS[name][0]} is not there", ""))
                continue
            if name == "peers" and not peers_installed():
                rows.append(benchlib.row("peers", "skipped", "no peer installed; pip install -e '.[peers]'", ""))
                continue
            script_rows, script_ok = run_script(name, args, out_dir)
            rows += script_rows
            ok &= script_ok
    info["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    info["total_minutes"] = round((time.perf_counter() - started) / 60, 1)

    targets = [r for r in rows if r["met"] is not None]
    met = sum(r["met"] for r in targets)
    print(
        f"\nMachine: {benchlib.describe_machine(info)}; load average {info['load_average_1min_end']:g} at the end; "
        f"{info['total_minutes']:g} min in all"
    )
    print("Values are medians of the runs given (after warm-up); ratios were measured side by side in one run.\n")
    print(benchlib.markdown_table(rows))
    print(f"\nTargets: {met} met, {len(targets) - met} not met" + ("" if ok else "; some benchmarks FAILED"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": info, "rows": benchlib.check_rows(rows)}, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
