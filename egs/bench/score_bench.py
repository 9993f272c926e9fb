#!/usr/bin/env python
"""Scoring at corpus scale with ``distilmos-predict score``: shards, flat memory, the cost of a kill, audio
decoding in worker processes, and the chunk size.

    python egs/bench/score_bench.py [--n_files 3000] [--memory_files 10000,100000] [--seconds 0.1-0.5]
        [--size tiny] [--threads 1] [--device cpu] [--workdir DIR] [--json PATH] [--quick]

Every figure comes from the command itself, run as a child process (``python -m distilmos.predictor score
... -o OUT``, ``--threads`` torch threads each), on generated 16 kHz wavs of uniform random length in
``--seconds``:

- **shards**: ``--n_files`` files scored by one process, then by two shards side by side (``--nshard 2
  --rank 0`` and ``--rank 1`` at once) and ``distilmos-predict merge``: files/s of each, and whether the
  merged output is byte-identical to the one-process output. The predictor is a real predictor file of a
  randomly initialised DistilMOS on a ``--size`` WavLM (``tiny`` by default: the figures are about the
  scorer, not the upstream; ``base`` for a realistic one);
- **memory**: the peak resident set size of the child (its ``ru_maxrss``, read by a small launcher: see
  :func:`peak_rss_run`) scoring the first
  and the second count of ``--memory_files`` files (in folders of 1000, as corpora are laid out; the
  folders after the first hold hard links to its recordings, so that 100,000 files take seconds to make). The
  predictor there is the smallest one that is a real predictor file (the waveform itself as its one
  layer, an SSL-MOS head), so that 100,000 files take minutes: what could grow with the number of files
  is the scorer's, not the model's. Target: the larger run within 15 % of the smaller;
- **kill**: one run over the ``--n_files`` files killed (SIGKILL) when its output holds half of the rows,
  then the same command again, against one uninterrupted run: the CPU time of both children (``ru_utime
  + ru_stime``, steadier than wall time on a shared machine) over the uninterrupted run's, without and
  with the second process's start-up (measured alone: the command on one file). Target: <= 1.05x;
- **workers**: ``--num_workers 0`` against ``1`` (``auto`` picks what pays: on a CPU, see
  ``CPU_AUTO_WORKERS`` in distilmos/predictor/predictor.py), in one process, rounds taken in turns;
- **chunk size**: padded audio over real audio of the batches at several ``--chunk_size`` values (the
  plan alone, no model): what a smaller chunk costs a GPU.

GPU: ``--device cuda`` runs the same sections on the GPU (two shards share it, the workers row compares 0
with 4 processes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

import benchlib  # noqa: E402  (beside this script)

MEMORY_TARGET = 1.15
KILL_TARGET = 1.05
#: files per folder of the generated corpus
FOLDER_FILES = 1000


def write_waveform_predictor(path: str, seed: int = 0) -> str:
    """The smallest real predictor file: the waveform itself as its one layer, a random SSL-MOS head."""
    import torch

    from distilmos.models.ssl_mos import SSLMOSModel
    from distilmos.predictor import downstreams
    from distilmos.predictor import upstream_entry as upstream_parts
    from distilmos.predictor.fileformat import write_predictor

    torch.manual_seed(seed)
    state = {f"model.{k}": v for k, v in SSLMOSModel(1).state_dict().items()}
    config = {"feature_selection": "hidden_states", "layer_selection": None, "normalize": False}
    blob = {
        "card": {"note": "random weights, for measurements only", "downstream": {"expert": "ssl_mos"}},
        "upstream": upstream_parts.waveform_entry(),
        "featurizer": {"config": dict(config, downsample_rate=1, output_dim=1, n_layers=None), "state_dict": {}},
        "downstream": downstreams.make_entry("ssl_mos", state)[0],
    }
    write_predictor(blob, path)
    return path


def make_corpus(root: str, n_files: int, low: float, high: float, seed: int) -> list[str]:
    """``n_files`` wavs in folders of :data:`FOLDER_FILES` (``root/000``, ``root/001``, ...); the folders,
    in order. The first folder's recordings are generated; each further folder holds hard links to them
    under names of its own (distinct files to the scorer, and seconds instead of minutes to make)."""
    first = os.path.join(root, "000")
    count = min(FOLDER_FILES, n_files)
    if not (os.path.isdir(first) and len(os.listdir(first)) == count):
        shutil.rmtree(root, ignore_errors=True)
        benchlib.make_wavs(first, count, low, high, seed, prefix="f000_")
    sources = sorted(os.listdir(first))
    folders = [first]
    for k in range(1, (n_files + FOLDER_FILES - 1) // FOLDER_FILES):
        folder = os.path.join(root, f"{k:03d}")
        os.makedirs(folder, exist_ok=True)
        for name in sources[: min(FOLDER_FILES, n_files - k * FOLDER_FILES)]:
            target = os.path.join(folder, f"f{k:03d}_{name[5:]}")
            if not os.path.exists(target):
                os.link(os.path.join(first, name), target)
        folders.append(folder)
    return folders


def run_children(argvs: list[list[str]], env: dict, kill_at: tuple[str, int] | None = None) -> list[dict]:
    """Run ``python -m distilmos.predictor ARGV`` for each ``argv``, side by side; per child: its wall time,
    CPU time (user + system, its own; ``os.wait4``). ``kill_at=(path, size)``: SIGKILL the (one) child once
    ``path`` holds ``size`` bytes. (Peak memory: :func:`peak_rss_run`.)"""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distilmos.predictor", *argv],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for argv in argvs
    ]
    killed = False
    if kill_at:
        path, size = kill_at
        while procs[0].poll() is None:
            if os.path.exists(path) and os.path.getsize(path) >= size:
                procs[0].send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
    results = []
    for argv, proc in zip(argvs, procs):
        stderr = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if not killed and proc.returncode not in (0, 1):
            raise RuntimeError(f"distilmos-predict {' '.join(argv[:2])}... exited {proc.returncode}: {stderr[-2000:]}")
        results.append(
            {
                "wall": time.perf_counter() - started,
                "cpu": usage.ru_utime + usage.ru_stime,
                "killed": killed,
                "stderr": stderr,
            }
        )
    return results


# Runs ARGV[2:] as its child and writes that child's os.wait4 resource usage as JSON to ARGV[1]. Linux keeps
# the high-water RSS of the image a process replaces: a child started by this (large, torch-loaded) bench
# reports the bench's own peak as its ru_maxrss, while a child of this small launcher starts from a small one.
LAUNCHER = """import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as report:
    json.dump({"maxrss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}, report)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss_run(cmd: list[str], env: dict, work: str) -> dict:
    """Run ``cmd`` through :data:`LAUNCHER`; its wall time, CPU time and peak RSS in MiB (its own and that of
    the processes it waited for, e.g. decoding workers), not inflated by this process's memory."""
    report = os.path.join(work, f"rusage_{os.getpid()}_{time.monotonic_ns()}.json")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, report, *cmd],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    with open(report) as handle:
        usage = json.load(handle)
    os.remove(report)
    return {"wall": wall, "cpu": usage["cpu"], "rss_mib": usage["maxrss_kib"] / 1024}  # KiB on Linux


def run_child(argv: list[str], env: dict, kill_at: tuple[str, int] | None = None) -> dict:
    """:func:`run_children` of one command."""
    return run_children([argv], env, kill_at)[0]


def _same(a: str, b: str) -> bool:
    with open(a, "rb") as x, open(b, "rb") as y:
        return x.read() == y.read()


def shards_section(args, env, model, inputs, n_files, work) -> list:
    group = f"shards ({args.size} WavLM, {n_files} files of {args.seconds} s, {args.device}, {args.threads} thread(s))"
    common = ["score", model, *inputs, "-q", "--device", args.device]
    one = os.path.join(work, "one.csv")
    single = run_child(common + ["-o", one], env)
    sharded = os.path.join(work, "sharded.csv")
    shards = run_children([common + ["-o", sharded, "--nshard", "2", "--rank", str(r)] for r in (0, 1)], env)
    both = max(shard["wall"] for shard in shards)
    merged = run_child(["merge", "-o", sharded, "--nshard", "2", *inputs], env)
    rate_one, rate_two = n_files / single["wall"], n_files / both
    return [
        benchlib.row(group, "1 process: throughput (start-up included)", rate_one, "files/s", runs=1),
        benchlib.row(group, "2 shards side by side: throughput (start-up included)", rate_two, "files/s", runs=1),
        benchlib.row(group, "2 shards vs 1 process", rate_two / rate_one, "x", runs=1),
        benchlib.row(group, "1 process: CPU time", single["cpu"], "s", runs=1),
        benchlib.row(group, "2 shards: CPU time, both together", sum(shard["cpu"] for shard in shards), "s", runs=1),
        benchlib.row(group, "merge of the 2 parts", merged["wall"], "s", runs=1),
        benchlib.row(
            group,
            "merged output byte-identical to the one-process output",
            "yes" if _same(one, sharded) and _same(one + ".failed.tsv", sharded + ".failed.tsv") else "no",
            "",
            target="identical",
            met=_same(one, sharded),
        ),
    ], single


def memory_section(args, env, counts, work, runs_dir) -> list:
    small, large = counts
    model = write_waveform_predictor(os.path.join(work, "waveform.pt"))
    folders = make_corpus(os.path.join(work, "memory"), large, *benchlib.parse_seconds(args.seconds), args.seed)
    group = f"memory (waveform predictor, files of {args.seconds} s in folders of {FOLDER_FILES}, {args.device})"
    runs = {}
    for count in (small, large):
        inputs = folders[: (count + FOLDER_FILES - 1) // FOLDER_FILES]
        out = os.path.join(runs_dir, f"memory_{count}.csv")  # a fresh output: an old one would be continued
        cmd = [sys.executable, "-m", "distilmos.predictor", "score", model, *inputs, "-o", out, "-q"]
        runs[count] = peak_rss_run(cmd + ["--device", args.device], env, runs_dir)
    rows = [
        benchlib.row(group, f"peak RSS, {count:,} files", runs[count]["rss_mib"], "MiB", runs=1)
        for count in (small, large)
    ]
    ratio = runs[large]["rss_mib"] / runs[small]["rss_mib"]
    rows.append(
        benchlib.row(
            group,
            f"peak RSS, {large:,} vs {small:,} files",
            ratio,
            "x",
            target=f"≤ {MEMORY_TARGET:g}×",
            met=ratio <= MEMORY_TARGET,
            runs=1,
        )
    )
    rows.append(benchlib.row(group, f"throughput, {large:,} files", large / runs[large]["wall"], "files/s", runs=1))
    return rows


def kill_section(args, env, model, inputs, n_files, work, single) -> list:
    group = f"kill at 50 % + rerun ({args.size} WavLM, {n_files} files, {args.device})"
    common = ["score", model, *inputs, "-q", "--device", args.device]
    out = os.path.join(work, "killed.csv")
    killed = run_child(common + ["-o", out], env, kill_at=(out, os.path.getsize(os.path.join(work, "one.csv")) // 2))
    rerun = run_child(common + ["-o", out], env)
    one_file = os.path.join(inputs[0], sorted(os.listdir(inputs[0]))[0])
    startup = run_child(["score", model, one_file, "-q", "--device", args.device], env)
    kept = re.search(r"\((\d+) done by an earlier run", rerun["stderr"])
    kept = int(kept.group(1)) if kept else 0
    ratio = (killed["cpu"] + rerun["cpu"] - startup["cpu"]) / single["cpu"]
    return [
        benchlib.row(group, "uninterrupted run, CPU time", single["cpu"], "s", runs=1),
        benchlib.row(group, "killed run + rerun, CPU time", killed["cpu"] + rerun["cpu"], "s", runs=1),
        benchlib.row(group, "of which the second start-up (the command on one file)", startup["cpu"], "s", runs=1),
        benchlib.row(group, "inputs the rerun kept from the killed run", kept, "count"),
        benchlib.row(
            group,
            "killed + rerun vs uninterrupted, CPU time, without the second start-up",
            ratio,
            "x",
            target=f"≤ {KILL_TARGET:g}×",
            met=ratio <= KILL_TARGET,
            runs=1,
        ),
        benchlib.row(
            group,
            "killed + rerun vs uninterrupted, CPU time, all in",
            (killed["cpu"] + rerun["cpu"]) / single["cpu"],
            "x",
            runs=1,
        ),
        benchlib.row(
            group,
            "rerun output byte-identical to the uninterrupted one",
            "yes" if _same(out, os.path.join(work, "one.csv")) else "no",
            "",
            target="identical",
            met=_same(out, os.path.join(work, "one.csv")),
        ),
    ]


def workers_section(args, model, inputs, work) -> list:
    import torch

    from distilmos.predictor import load
    from distilmos.predictor.inputs import iter_entries

    torch.set_flush_denormal(True)  # as the command does
    predictor = load(model, device=args.device)
    paths = [e.wav_path for e in iter_entries(inputs)][: args.worker_files]
    many = 4 if str(args.device).startswith("cuda") else 1
    cases = {n: (lambda n=n: predictor.score_files(paths, num_workers=n)) for n in (0, many)}
    times = benchlib.time_rounds(cases, warmup=args.warmup, repeats=args.repeats, device=args.device)
    rate = {n: len(paths) / benchlib.median(times[n, "wall"]) for n in cases}
    group = f"audio decoding workers ({args.size} WavLM, {len(paths)} files, {args.device})"
    return [
        benchlib.row(group, "--num_workers 0: throughput", rate[0], "files/s", runs=args.repeats),
        benchlib.row(group, f"--num_workers {many}: throughput", rate[many], "files/s", runs=args.repeats),
        benchlib.row(group, f"--num_workers {many} vs 0", rate[many] / rate[0], "x", runs=args.repeats),
    ]


def chunk_section(args) -> list:
    import numpy as np

    from distilmos.data.audio import SAMPLE_RATE
    from distilmos.data.batching import plan_batches

    low, high = benchlib.parse_seconds(args.seconds)
    rows = []
    for label, (a, b) in ((f"{args.seconds} s", (low, high)), ("1-10 s", (1.0, 10.0))):
        lengths = (np.random.default_rng(args.seed).uniform(a, b, 20000) * SAMPLE_RATE).astype(int).tolist()
        for size in (64, 256, 512, 2048):
            padded = real = 0
            for start in range(0, len(lengths), size):
                chunk = lengths[start : start + size]
                for batch in plan_batches(chunk, 160.0, 16, None):
                    padded += max(chunk[i] for i in batch) * len(batch)
                    real += sum(chunk[i] for i in batch)
            rows.append(
                benchlib.row(
                    f"chunk size (batches of 16, files of {label})",
                    f"--chunk_size {size}: padding over real audio",
                    100 * (padded / real - 1),
                    "%",
                )
            )
    return rows


def measure(args) -> tuple[list, dict]:
    from predict_bench import write_random_predictor

    from distilmos.upstream.tiny import write_checkpoint

    threads = benchlib.set_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    workdir = args.workdir or tempfile.mkdtemp(prefix="score_bench_")
    low, high = benchlib.parse_seconds(args.seconds)
    ckpt = write_checkpoint(os.path.join(workdir, f"wavlm_{args.size}.pt"), "wavlm", args.size, seed=args.seed)
    model = write_random_predictor(ckpt, os.path.join(workdir, "predictor.pt"), args.seed)
    inputs = make_corpus(os.path.join(workdir, "wavs"), args.n_files, low, high, args.seed + 1)
    runs = os.path.join(workdir, "runs")
    shutil.rmtree(runs, ignore_errors=True)
    os.makedirs(runs)
    rows, single = shards_section(args, env, model, inputs, args.n_files, runs)
    rows += kill_section(args, env, model, inputs, args.n_files, runs, single)
    rows += workers_section(args, model, inputs, runs)
    rows += memory_section(args, env, [int(c) for c in args.memory_files.split(",")], workdir, runs)
    rows += chunk_section(args)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows, benchlib.machine(args.device, threads)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n_files", type=int, default=3000, help="files of the shards and kill runs (default 3000)")
    parser.add_argument(
        "--memory_files", default="10000,100000", help="the two counts of the memory runs (default 10000,100000)"
    )
    parser.add_argument("--worker_files", type=int, default=600, help="files of the workers rows (default 600)")
    parser.add_argument("--seconds", default="0.1-0.5", help="file lengths, S or MIN-MAX seconds (default 0.1-0.5)")
    parser.add_argument("--size", choices=("tiny", "base"), default="tiny", help="WavLM size (default tiny)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of the workers rows (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of the workers rows (default 3)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads of each process (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="keep the corpora here, and reuse them (default: temporary)")
    parser.add_argument("--json", default=None, help="write the result rows here (JSON list)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few dozen files, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_files, args.memory_files, args.worker_files, args.warmup, args.repeats = 48, "100,1000", 24, 0, 1

    rows, machine = measure(args)
    print(f"Machine: {benchlib.describe_machine(machine)}")
    print("Each figure: one run of the command (a child process), or the median of the rounds given.\n")
    print(benchlib.markdown_table(rows))
    benchlib.write_json(args.json, rows)


if __name__ == "__main__":
    main()
