"""What the benchmark scripts of egs/bench share: generated wavs, timing, result rows, the machine.

Every script prints a Markdown table and, with ``--json PATH``, writes its figures as a JSON list of
rows ``{"group", "measure", "value", "unit", "target", "met", "runs"}``: ``target`` a string such as
``"≤ 1.15× no_token"`` or null, ``met`` true/false/null, ``runs`` how many timed runs the value is the
median of (null for a count or a single-shot figure). ``run_all.py`` joins the rows of every script.

Absolute times depend on the machine and on what else runs on it; ratios of figures measured side by
side in one run are what carry over, so each script states its targets as ratios.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable

ROW_KEYS = ("group", "measure", "value", "unit", "target", "met", "runs")


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


def write_list(path: str, items: Iterable, system_id: str = "bench", score: float = 3.0) -> str:
    """A data list CSV (``sample_id,system_id,wav_path,score``) of ``(sample_id, wav_path)`` items."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("sample_id,system_id,wav_path,score\n")
        for sample_id, wav in items:
            handle.write(f"{sample_id},{system_id},{wav},{score}\n")
    return path


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


def time_interleaved(
    fns: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Time several functions round by round (each round calls every one once), so drift in the machine's
    load hits them alike: ``{name: {"wall": [s, ...], "cpu": [s, ...]}}`` after ``warmup`` untimed rounds.
    CPU time is the process's, the steadier figure on a shared machine when torch runs one thread."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name]["wall"].append(time.perf_counter() - started)
            times[name]["cpu"].append(time.process_time() - started_cpu)
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


def report(info: dict, rows: list, json_path: str | None) -> None:
    """Print the machine line and the rows' table; write the rows to ``json_path`` (when given)."""
    print(f"\n{describe_machine(info)}\n")
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


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def machine(device: str = "cpu", threads: int | None = None) -> dict:
    """What the figures were measured on: CPU, cores, memory, library versions, threads, load."""
    import torch

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib() or 0, 1) or None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads or torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "device": device,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def describe_machine(info: dict) -> str:
    """One line for the top of a table."""
    parts = [f"{info['cpu']}, {info['cores']} cores"]
    if info.get("memory_gib"):
        parts.append(f"{info['memory_gib']:g} GiB")
    parts.append(f"Python {info['python']}, torch {info['torch']}, {info['torch_threads']} torch thread(s)")
    if info.get("gpu"):
        parts.append(f"GPU {info['gpu']}")
    parts.append(f"device {info['device']}")
    if info.get("load_average_1min") is not None:
        parts.append(f"load average {info['load_average_1min']:g} at the start")
    return "; ".join(parts)
