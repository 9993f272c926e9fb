"""The machine a speed was measured on: CPU, cores, memory, library versions, threads, load.

Every benchmark (``egs/bench``) and every table that reports a speed (the MOS-Bench leaderboard's files/s)
describes its machine with these, so that figures from two machines are never compared unawares.

Layer: evaluation; imports nothing of the toolkit.
"""

from __future__ import annotations

import os
import platform


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
