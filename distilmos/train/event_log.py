"""The tensorboard writer of a training run, whose failed writes end nothing.

tensorboardX writes its event file from a background thread, and flushes it again at interpreter exit.
On a full disk both raise, and their tracebacks would follow the run's own one-line error (its checkpoint
could not be saved). Tensorboard curves are a convenience (``log.jsonl`` holds every logged value too), so
the event file here drops what it cannot write and remembers why: :func:`close` reports it once, after a
run that otherwise ended well. The file is handed to tensorboardX through its own hook for storage
back ends (``register_writer_factory``), so the writer is tensorboardX's, unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sys

#: the storage prefix this module registers with tensorboardX (its logdirs read ``PREFIX:/path``)
PREFIX = "distilmos-events"


class EventFile:
    """An unbuffered event file that drops writes after the first failure (see the module docstring)."""

    def __init__(self, path: str):
        self.path = path
        self.error: OSError | None = None
        self._handle = open(path, "wb", buffering=0)  # unbuffered: nothing left to flush at exit

    def write(self, data: bytes) -> None:
        if self.error is None:
            try:
                self._handle.write(data)
            except OSError as exc:
                self.error = exc

    def flush(self) -> None:
        if self.error is None:
            try:
                os.fsync(self._handle.fileno())
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()


class _Factory:
    """tensorboardX's interface of a storage back end: ``open(path)`` and ``directory_check(path)``."""

    def __init__(self):
        self.opened: list[EventFile] = []

    def open(self, path: str) -> EventFile:
        handle = EventFile(path[len(PREFIX) + 1 :])
        self.opened.append(handle)
        return handle

    def directory_check(self, path: str) -> None:
        os.makedirs(path[len(PREFIX) + 1 :], exist_ok=True)


_FACTORY = _Factory()


def open_writer(logdir: str):
    """A tensorboardX ``SummaryWriter`` writing its events into ``logdir`` through :class:`EventFile`."""
    from tensorboardX import SummaryWriter
    from tensorboardX.record_writer import register_writer_factory

    register_writer_factory(PREFIX, _FACTORY)
    return SummaryWriter(f"{PREFIX}:{os.path.abspath(logdir)}")


def close(writer, report: bool = True) -> None:
    """Close a writer of :func:`open_writer`; with ``report``, say once if some events could not be written."""
    logdir = writer.logdir[len(PREFIX) + 1 :]
    writer.close()
    failed = [f for f in _FACTORY.opened if f.error is not None and os.path.dirname(f.path) == logdir]
    _FACTORY.opened = [f for f in _FACTORY.opened if os.path.dirname(f.path) != logdir]
    if report and failed:
        print(
            f"[distilmos] warning: tensorboard events in {logdir} are incomplete ({failed[0].error}); "
            f"{os.path.join(logdir, 'log.jsonl')} holds every logged value",
            file=sys.stderr,
        )
