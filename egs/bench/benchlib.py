"""What the benchmark scripts of egs/bench share: generated wavs, timing, result rows, the machine.

Every script prints a Markdown table and, with ``--json PATH``, writes its figures as a JSON list of
rows ``{"group", "measure", "value", "unit", "target", "met", "runs"}``: ``target`` a string such as
``"≤ 1.15× no_token"`` or null, ``met`` true/false/null, ``runs`` how many timed runs the value is the
median of (null for a count or a single-shot figure). ``run_all.py`` joins the rows of every script.

Absolute times depend on the machine and on what else runs on it; ratios of figures measured side by
side in one run are what carry over, so each script states its targets as ratios.

A script's ``main`` is its own options (those of its generated corpus: :func:`corpus_options`),
:func:`common_options` (``--device --threads --seed --workdir --json --quick``) and :func:`run`, which
measures in a scratch folder and prints and writes the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator

from distilmos.eval.machine import cpu_model, describe_machine, machine, memory_gib  # noqa: F401 (the benches' API)

ROW_KEYS = ("group", "measure", "value", "unit", "target", "met", "runs")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOWNSTREAM = os.path.join(REPO, "downstream")  # this checkout's experts, as s3prl's downstream folder


# ------------------------------------------------------------------------------------------ data


def make_wavs(
    folder: str, n_utts: int, min_seconds: float, max_seconds: float, seed: int, prefix: str = "bench"
) -> list:
    """Write ``n_utts`` seeded 16 kHz wavs of uniform random length; return ``[(sample_id, path)]``.

    The content (a tone with noise) does not change any cost measured here; the lengths do. The first
    ``n`` items are the same whatever ``n_utts`` is, so prefixes give smaller corpora of the same kind.
    """
    import numpy as np
    import soundfile as sf

    from distilmos.data.audio import SAMPLE_RATE

    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    items = []
    for i in range(n_utts):
        n = int(rng.uniform(min_seconds, max_seconds) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.standard_normal(n)
        sample_id = f"{prefix}{i:04d}"
        path = os.path.join(folder, f"{sample_id}.wav")
        sf.write(path, np.clip(wav, -1, 1).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        items.append((sample_id, path))
    return items


def write_list(path: str, items: Iterable, system_id: str = "bench", score: float = 3.0, listeners: int = 0) -> str:
    """A data list CSV (``sample_id,system_id,wav_path,score``) of ``(sample_id, wav_path)`` items; with
    ``listeners``, a listener list instead (that many ratings per item, ``listener_id`` ``l0``, ``l1``, ...)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("sample_id,system_id,wav_path,score" + (",listener_id\n" if listeners else "\n"))
        for sample_id, wav in items:
            for rating in [f",l{i}" for i in range(listeners)] or [""]:
                handle.write(f"{sample_id},{system_id},{wav},{score}{rating}\n")
    return path


def train_argv(
    ckpt: str,
    expert: str,
    config: str,
    expdir: str,
    device: str,
    seed: int,
    datarc: dict,
    runner: dict,
    modelrc: dict | None = None,
) -> list[str]:
    """``run_downstream.py -m train`` options of a run of ``expert`` (from its ``config`` file) on the
    ``wavlm_local`` checkpoint ``ckpt``, with the config's ``datarc``, ``runner`` and ``modelrc`` entries
    (dotted keys for nested ones) overridden."""
    overrides = {f"config.downstream_expert.datarc.{k}": v for k, v in datarc.items()}
    overrides.update({f"config.runner.{k}": v for k, v in runner.items()})
    overrides.update({f"config.downstream_expert.modelrc.{k}": v for k, v in (modelrc or {}).items()})
    argv = ["-m", "train", "-u", "wavlm_local", "-k", ckpt, "-d", expert]
    argv += ["-c", os.path.join(DOWNSTREAM, expert, config), "--device", device, "-p", expdir, "--seed", str(seed)]
    return argv + ["-o", ",,".join(f"{k}={v}" for k, v in overrides.items())]


def parse_seconds(text: str) -> tuple:
    """``"3"`` -> (3, 3); ``"2-4"`` -> (2, 4): the range utterance lengths are drawn from."""
    try:
        low, _, high = text.partition("-")
        low, high = float(low), float(high or low)
    except ValueError:
        raise ValueError(f"--seconds takes S or MIN-MAX (seconds), got {text!r}") from None
    if not 0 < low <= high:
        raise ValueError(f"--seconds: need 0 < MIN <= MAX, got {text!r}")
    return low, high


# ---------------------------------------------------------------------------------------- timing


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch/OpenMP/BLAS threads in this process (None: leave the libraries' own)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # numpy's BLAS and scikit-learn's OpenMP pools
    return torch.get_num_threads()


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for the device's queued work (CUDA runs asynchronously)."""
    import torch

    if str(device).startswith("cuda"):
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_runs(
    fn: Callable[[], object], warmup: int, repeats: int, sync: Callable[[], None] = lambda: None
) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; return the wall times (s)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return times


def clocks(device: str) -> dict[str, Callable[[], float]]:
    """The clocks a figure is timed by: wall time, and on a CPU also this process's CPU time. On a machine
    shared with other jobs the wall time includes waiting for a core and the CPU time does not (with one
    torch thread the CPU time is what the wall time would be on a quiet machine); a GPU's work is not the
    process's CPU time, so on CUDA there is wall time only."""
    if str(device).startswith("cuda"):
        return {"wall": time.perf_counter}
    return {"wall": time.perf_counter, "CPU": time.process_time}


def time_rounds(
    tasks: dict[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    device: str = "cpu",
    on_round: Callable[[int], None] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> dict[tuple[str, str], list[float]]:
    """Time ``tasks`` round by round, every task once a round in turn, so that a drift of the machine's load
    touches them alike: ``warmup`` untimed rounds, then ``repeats`` timed ones. Returns ``{(task, clock):
    [seconds per timed round]}`` for each of :func:`clocks`; the device's queued work is waited for. Calls
    ``on_round(round_index)`` after each round. With ``on_error``, a task that raises is reported to it and
    left out of the later rounds (its times so far are kept); without, the error propagates."""
    tasks, sync, timers = dict(tasks), synchronizer(device), clocks(device)
    times: dict[tuple[str, str], list[float]] = {(t, c): [] for t in tasks for c in timers}
    for round_ in range(warmup + repeats):
        for name, fn in list(tasks.items()):
            sync()
            started = {c: clock() for c, clock in timers.items()}
            try:
                fn()
                sync()
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(name, exc)
                del tasks[name]
                continue
            if round_ >= warmup:
                for c, clock in timers.items():
                    times[name, c].append(clock() - started[c])
        if on_round:
            on_round(round_)
    return times


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


# ------------------------------------------------------------------------------------------- rows


def row(
    group: str,
    measure: str,
    value,
    unit: str,
    target: str | None = None,
    met: bool | None = None,
    runs: int | None = None,
) -> dict:
    """One result row (see the module docstring); NaN values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    return {
        "group": group,
        "measure": measure,
        "value": value,
        "unit": unit,
        "target": target,
        "met": None if met is None else bool(met),
        "runs": runs,
    }


def check_rows(rows: list, source: str = "rows") -> list:
    """Refuse rows that do not follow the row format, naming the first bad one."""
    if not isinstance(rows, list):
        raise ValueError(f"{source}: expected a JSON list of rows, got {type(rows).__name__}")
    for i, r in enumerate(rows):
        problems = []
        if not isinstance(r, dict) or set(r) != set(ROW_KEYS):
            problems.append(f"keys must be {', '.join(ROW_KEYS)}")
        else:
            if not (isinstance(r["group"], str) and isinstance(r["measure"], str) and isinstance(r["unit"], str)):
                problems.append("group, measure and unit must be strings")
            if r["value"] is not None and not isinstance(r["value"], (int, float, str)):
                problems.append("value must be a number, a string or null")
            if r["target"] is not None and not isinstance(r["target"], str):
                problems.append("target must be a string or null")
            if r["met"] not in (True, False, None):
                problems.append("met must be true, false or null")
            if r["runs"] is not None and not (isinstance(r["runs"], int) and r["runs"] > 0):
                problems.append("runs must be a positive integer or null")
        if problems:
            raise ValueError(f"{source}: row {i} ({r!r}): " + "; ".join(problems))
    return rows


def write_json(path: str | None, rows: list) -> None:
    """Write the rows to ``path`` (nothing when ``path`` is None)."""
    if path:
        check_rows(rows, path)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1, ensure_ascii=False)
            handle.write("\n")


def report(info: dict, rows: list, json_path: str | None, note: str | None = None) -> None:
    """Print the machine line, ``note`` (how the figures were taken) and the rows' table; write the rows to
    ``json_path`` (when given)."""
    print(f"\n{describe_machine(info)}")
    if note:
        print(note)
    print()
    print(markdown_table(rows))
    write_json(json_path, rows)


def format_value(value, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (unit in ("params", "utts", "count") and float(value).is_integer()):
        return f"{int(value):,}"
    magnitude = abs(value)
    digits = 3 if magnitude < 1 else 2 if magnitude < 100 else 0
    return f"{value:.{digits}f}"


def markdown_table(rows: list) -> str:
    """The rows as a Markdown table: group, measure, value, unit, target, met, runs."""
    lines = ["| group | measure | value | unit | target | met | runs |", "|---|---|---:|---|---|---|---:|"]
    for r in rows:
        met = {True: "met", False: "**not met**", None: ""}[r["met"]]
        lines.append(
            f"| {r['group']} | {r['measure']} | {format_value(r['value'], r['unit'])} | {r['unit']} | "
            f"{r['target'] or ''} | {met} | {r['runs'] or ''} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- machine


# ----------------------------------------------------------------------------------- command line


def common_options(
    parser: argparse.ArgumentParser,
    quick: str,
    *,
    rounds: tuple[int, int] | None = None,
    threads: int | None = None,
    device: str = "device to measure on: cpu or cuda (default cpu)",
    seed: bool = True,
    workdir: bool = True,
) -> argparse.ArgumentParser:
    """Add the options every script takes after its own: ``--warmup`` and ``--repeats`` (defaults ``rounds``,
    when given), ``--device``, ``--threads`` (default ``threads``), ``--seed`` and ``--workdir`` (unless
    switched off), ``--json`` and ``--quick`` (help text ``quick``)."""
    if rounds:
        parser.add_argument("--warmup", type=int, default=rounds[0], help=f"untimed rounds first (default {rounds[0]})")
        parser.add_argument(
            "--repeats", type=int, default=rounds[1], help=f"timed rounds; figures are medians (default {rounds[1]})"
        )
    parser.add_argument("--device", default="cpu", help=device)
    default = f"default {threads}" if threads else "default: the libraries' own"
    parser.add_argument("--threads", type=int, default=threads, help=f"torch/OpenMP/BLAS threads ({default})")
    if seed:
        parser.add_argument("--seed", type=int, default=0)
    if workdir:
        parser.add_argument("--workdir", default=None, help="scratch folder, kept (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the result rows here (JSON list)")
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def corpus_options(
    parser: argparse.ArgumentParser, *, n_utts: int, seconds: str, arch: bool = False
) -> argparse.ArgumentParser:
    """Add the options of the generated corpus and of the tiny-format upstream a script measures on: ``--arch``
    (when ``arch``; default wavlm), ``--size`` (base or tiny, default base), ``--n_utts`` and ``--seconds``
    (S or MIN-MAX, see :func:`parse_seconds`) with the script's defaults."""
    from distilmos.upstream.tiny import ARCHS

    if arch:
        parser.add_argument(
            "--arch", default=ARCHS[0], choices=ARCHS, help=f"upstream architecture (default {ARCHS[0]})"
        )
    parser.add_argument("--size", choices=("base", "tiny"), default="base", help="upstream size (default base)")
    parser.add_argument("--n_utts", type=int, default=n_utts, help=f"generated utterances (default {n_utts})")
    parser.add_argument(
        "--seconds", default=seconds, help=f"utterance lengths, S or MIN-MAX seconds (default {seconds})"
    )
    return parser


@contextlib.contextmanager
def scratch(workdir: str | None) -> Iterator[str]:
    """``workdir`` (created, kept), or a temporary folder removed afterwards."""
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="bench_") as folder:
        yield folder


def run(args: argparse.Namespace, measure: Callable[[argparse.Namespace, str], list], note: str | None = None) -> list:
    """The end of every script's ``main``: the threads set (``args.threads`` becomes the number in use),
    ``measure(args, folder)`` in ``--workdir`` (or a temporary folder), then the machine, ``note`` and the
    rows' table printed and the rows written to ``--json``. Returns the rows."""
    args.threads = set_threads(args.threads)
    info = machine(args.device, args.threads)
    with scratch(getattr(args, "workdir", None)) as folder:
        rows = measure(args, folder)
    report(info, rows, args.json, note)
    return rows
