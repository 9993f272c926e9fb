"""File helpers: atomic writes (a killed job never leaves a file that looks whole), the checks that an output
can be written (made before the work, so that no finished work is lost to an unwritable path), the one file
hash, and reading s3prl checkpoints safely."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO

from .errors import OutputError


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


def _write_probe(folder: str) -> str | None:
    """Why a file cannot be created in ``folder`` (created first if missing), or None when it can."""
    existing = folder
    while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is not a folder"
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        return f"cannot create a file in {folder}: {exc.strerror or exc}"
    return None


def check_writable_dir(folder: str | os.PathLike, what: str = "folder") -> None:
    """Create ``folder`` if needed and prove that a file can be created in it (a probe file, removed at
    once); raise :class:`~distilmos.errors.OutputError` naming it otherwise.

    A real write, not ``os.access``: permission bits say nothing for root, a read-only mount, an ACL or
    a full quota, and a parent that is a file fails only here.
    """
    folder = os.fspath(folder)
    reason = _write_probe(os.path.abspath(folder))
    if reason:
        raise OutputError(f"{what} {folder} cannot be written: {reason}; choose another folder, or make it writable")


def check_writable_file(path: str | os.PathLike, what: str = "output file") -> None:
    """Refuse, before any work, an output file that :func:`atomic_write` could not write: a path that is a
    folder, or whose folder cannot be created or written in (see :func:`check_writable_dir`)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(f"{what} {path} is a folder; give a file name")
    reason = _write_probe(os.path.dirname(os.path.abspath(path)))
    if reason:
        raise OutputError(
            f"{what} {path} cannot be written: {reason}; choose another path, or make its folder writable"
        )


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
