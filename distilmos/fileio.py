"""File helpers: atomic writes (a killed job never leaves a file that looks whole), the one file hash, and
reading s3prl checkpoints safely."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it is fsynced and renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from the rest of a shared cluster
        os.close(fd)
        with open(tmp, mode, **open_kwargs) as handle:  # by name, so handle.name says where it writes
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def allow_s3prl_checkpoints() -> None:
    """s3prl checkpoints hold the run's ``argparse.Namespace``; allow it under ``torch.load``'s
    ``weights_only=True`` default (torch >= 2.6) instead of unpickling arbitrary objects."""
    import argparse

    import torch  # here, so that the foundation imports no torch until a checkpoint is read

    torch.serialization.add_safe_globals([argparse.Namespace])


def unwritable(path: str | os.PathLike) -> str | None:
    """Why the folder ``path`` cannot be written (or created), or None when it can; creates nothing, so
    that a job can refuse a bad output before its work and leave no trace."""
    probe = os.path.abspath(os.fspath(path))
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None
