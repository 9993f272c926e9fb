"""One run per output: a lock that refuses a second run into the same folder (or store split) and names
the first.

Two training runs into one experiment folder, or two dumps into one split of a token store, would
overwrite each other's files while both report success. :class:`RunLock` makes the second one fail at
once with :class:`LockHeldError`, naming the holder (process id, host, start time, command).

How: ``fcntl.flock`` on a lock file, plus a JSON record of the holder written into it. The kernel
releases a ``flock`` when its holder dies however it dies (kill -9, out of memory), so a dead run never
blocks the next one; the record it leaves behind only lets the next run say whose lock it takes over
(a warning). Caveat: on network file systems ``flock`` is only as good as the mount's lock support
(NFSv4 and Lustre with ``flock`` locks are fine; ``local_lock``/``localflock`` mounts lock per host, so
runs on two hosts are not refused; where locks are not supported at all a warning says so and the run
goes on unlocked).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import shlex
import socket
import sys

from .errors import ToolkitError

#: the lock file of an experiment folder
EXPERIMENT_LOCK = ".distilmos.lock"


class LockHeldError(ToolkitError, RuntimeError):
    """Another run holds the lock; the message names it (process id, host, start time, command)."""


def holder_record() -> dict:
    """Who this process is, for the lock file: pid, host, start time (local, ISO) and command line."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([os.path.basename(sys.executable)] + sys.argv),
    }


def describe(record: dict) -> str:
    """``pid 123 on host, started 2025-01-01T10:00:00+00:00: python run_downstream.py ...``"""
    return (
        f"pid {record.get('pid', '?')} on {record.get('host', '?')}, started {record.get('started', '?')}: "
        f"{record.get('command', '?')}"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class RunLock:
    """An exclusive lock on ``path`` (a lock file, created if missing) for one run; ``what`` names what it
    guards in messages ("experiment folder exp/x"). Use as a context manager: released on exit, on any
    exception, and by the kernel if the process dies."""

    def __init__(self, path: str, what: str):
        self.path = os.path.abspath(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock; raise :class:`LockHeldError` naming the holder when another run has it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_record(fd)
                os.close(fd)
                raise LockHeldError(
                    f"{self.what} is in use by another run ({describe(holder) if holder else 'holder unknown'}); "
                    f"wait for it to end or stop it, or use another folder (lock file {self.path})"
                ) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                print(
                    f"[distilmos] warning: the file system of {self.path} does not support locks ({exc.strerror}): "
                    f"a second run into {self.what} would not be refused",
                    file=sys.stderr,
                )
                self._fd = fd
                return self
            # A holder that ended removed the file after we opened it: our lock is on a file no longer there.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        previous = _read_record(fd)
        if previous and previous.get("pid") != os.getpid():
            gone = previous.get("host") == socket.gethostname() and not _alive(int(previous.get("pid", 0) or 0))
            print(
                f"[distilmos] warning: taking over the lock of {self.what} left by a run that did not end cleanly "
                f"({describe(previous)}){'; that process is gone' if gone else ''}",
                file=sys.stderr,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_record()) + "\n").encode(), 0)
        os.fsync(fd)
        return self

    def release(self) -> None:
        """Remove the lock file and let go (the file first, so a waiting run retries on a new one)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_record(fd: int) -> dict | None:
    try:
        text = os.pread(fd, 1 << 16, 0).decode("utf-8", "replace").strip()
        record = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def experiment_lock(expdir: str) -> RunLock:
    """The lock of a training run's experiment folder."""
    return RunLock(os.path.join(expdir, EXPERIMENT_LOCK), f"experiment folder {expdir}")
