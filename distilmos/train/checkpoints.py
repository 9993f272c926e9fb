"""Checkpoints that never cost more than a few steps of work.

- Every checkpoint is written atomically (a temporary file in the same folder, flushed, fsynced, renamed
  into place), and only then are the ``states-*.ckpt`` that ``max_keep`` retires removed: a kill or a
  full disk during a save leaves the previous checkpoints whole.
- A full disk during a save is one :class:`CheckpointError` naming the folder and the space needed; a run
  is refused before its first step when the folder cannot hold the checkpoints it will keep.
- A checkpoint carries what an exact resume needs besides s3prl's own keys (model, optimizer, scheduler,
  step, epoch): the RNG states of every rank (Python, NumPy, torch, CUDA) and the position in the
  epoch's data order (:data:`BATCH_IN_EPOCH`).
"""

from __future__ import annotations

import errno
import glob
import os
import random
import re
import shutil
from collections.abc import Iterable

import numpy as np
import torch

from distilmos.errors import ToolkitError
from distilmos.fileio import atomic_write

#: checkpoint key: batches of the current epoch already trained on (s3prl's keys: Step, Epoch, ...)
BATCH_IN_EPOCH = "BatchInEpoch"
#: checkpoint key: the RNG states of every rank, a list indexed by rank
RNG = "RNG"

_STATES = re.compile(r"^states-(\d+)\.ckpt$")


class CheckpointError(ToolkitError, OSError):
    """A checkpoint that cannot be written (full disk); the message names the folder and the space needed."""


def _serialize(states: dict, handle) -> None:
    torch.save(states, handle)


def state_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) checkpoint dict: about the size of its file."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_bytes(v) for v in obj)
    return 0


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.1f} kB"


#: the errnos of a full disk (or quota)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
RESUME_HINT = (
    "the previous checkpoints are intact: free some space and resume (run_downstream.py -a, or rerun the recipe)"
)


def save(states: dict, path: str) -> None:
    """Write a checkpoint atomically; a full disk raises :class:`CheckpointError` and leaves ``path`` (and
    every other file) as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with atomic_write(path, "wb") as handle:
            _serialize(states, handle)
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise CheckpointError(
            f"no space left in {folder} to save {os.path.basename(path)}: it needs about "
            f"{_mb(state_bytes(states))}, {_mb(shutil.disk_usage(folder).free)} free; {RESUME_HINT}"
        ) from exc


def no_space(expdir: str, exc: OSError) -> CheckpointError:
    """The one error of a disk that filled while a run wrote something other than a checkpoint (metrics,
    predictions, logs)."""
    what = f" writing {exc.filename}" if exc.filename else ""
    return CheckpointError(f"no space left in {expdir}{what} ({exc.strerror}); {RESUME_HINT}")


def states_paths(expdir: str) -> list[str]:
    """The ``states-<step>.ckpt`` of a folder, oldest step first."""
    found = [
        (int(m.group(1)), p)
        for p in glob.glob(os.path.join(expdir, "states-*.ckpt"))
        if (m := _STATES.match(os.path.basename(p)))
    ]
    return [p for _, p in sorted(found)]


def retire(expdir: str, max_keep: int, keep: Iterable[str] = ()) -> list[str]:
    """Remove the oldest ``states-*.ckpt`` so that at most ``max_keep`` remain (never one in ``keep``)."""
    keep = {os.path.abspath(p) for p in keep}
    paths = states_paths(expdir)
    removed = []
    for path in paths[: max(0, len(paths) - max(1, int(max_keep)))]:
        if os.path.abspath(path) not in keep:
            os.remove(path)
            removed.append(path)
    return removed


def remove_temporaries(expdir: str) -> list[str]:
    """Remove the temporary files of checkpoint writes that a kill interrupted."""
    stale = glob.glob(os.path.join(expdir, ".states-*.ckpt.*.tmp")) + glob.glob(
        os.path.join(expdir, ".best-states-*.ckpt.*.tmp")
    )
    for path in stale:
        os.remove(path)
    return stale


def check_space(expdir: str, checkpoint_bytes: int, max_keep: int) -> None:
    """Refuse a run whose folder cannot hold what it will keep: ``max_keep`` states, the best checkpoint
    and one being written."""
    needed = checkpoint_bytes * (max(1, int(max_keep)) + 2)
    free = shutil.disk_usage(expdir).free
    if free < needed:
        raise CheckpointError(
            f"not enough free space in {expdir} to save this run: a checkpoint is about {_mb(checkpoint_bytes)} and "
            f"up to {max(1, int(max_keep)) + 2} exist at once (max_keep {max_keep}, the best one, the one being "
            f"written): {_mb(needed)} needed, {_mb(free)} free"
        )


def estimate_bytes(models: Iterable[torch.nn.Module], optimizer_copies: int = 2) -> int:
    """The size of a checkpoint of ``models`` with an optimizer keeping ``optimizer_copies`` tensors per
    trainable parameter (2 for Adam), before any has been written."""
    total = 0
    for model in models:
        total += state_bytes(model.state_dict())
        total += optimizer_copies * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return total


# ---- RNG states ----------------------------------------------------------------------------------------


def rng_state(device: torch.device | None = None) -> dict:
    """This process's RNG states, as plain values and tensors (loadable with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if device is not None and torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    """Restore the states :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_rng_states(device: torch.device | None = None) -> list[dict]:
    """Every rank's RNG states (a list indexed by rank); a collective call under ``torch.distributed``."""
    mine = rng_state(device)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [mine]
    gathered: list[dict | None] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, mine)
    return gathered
