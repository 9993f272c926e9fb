"""Scoring split over processes, GPUs and machines: ``--nshard N --rank R``, and the merge of the parts.

Which inputs a shard takes: the inputs are cut into chunks of ``chunk_size`` in input order (the chunks
every run scores, :meth:`~distilmos.predictor.predictor.Predictor.score_chunks`), and rank ``R`` takes the
chunks ``k`` with ``k % N == R``. Whole chunks, not every N-th input, so that each chunk is scored in the
same batches as in a one-process run: the merged output is byte-identical to one, for any upstream
(an upstream whose scores depend on their batch included, and float rounding too). Shards differ by at
most one chunk of inputs.

Each shard writes a part, ``OUT.part-R-of-N`` with its own sidecar and run record, streamed and
resumable like a one-process output (:mod:`distilmos.predictor.streaming`), then ``OUT.part-R-of-N.done``.
:func:`merge_parts` (``distilmos-predict merge``; or rank 0 at the end under ``torchrun``) enumerates
the inputs again and takes input ``i``'s row or failure from part ``(i // chunk_size) % N``; it refuses an
unfinished part, naming it, writes ``OUT``, its sidecar and run record, and removes the parts.

Defaults, as ``torchrun`` and ``python -m upstream_tokens dump`` have them: ``--nshard`` ``WORLD_SIZE``,
``--rank`` ``RANK``, the device ``cuda:LOCAL_RANK`` when there is a GPU.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from distilmos.errors import ConfigError, ToolkitError
from distilmos.locks import LockHeldError, RunLock

from .inputs import Entry
from .streaming import (
    SIDECAR_HEADER,
    DoneRecords,
    ResumeError,
    ScoreFormat,
    Target,
    Totals,
    commit,
    differences,
    read_json,
    recover,
    remove_files,
    starts_with,
    write_json,
)

#: seconds between looks at the other parts, for rank 0 waiting to merge
POLL_SECONDS = 2.0
#: how long a merge waits for a finished rank to let go of its part's lock
LOCK_GRACE_SECONDS = 30.0


class MergeError(ToolkitError, ValueError):
    """Parts that cannot be merged (missing, unfinished, written with other settings); the message names
    the part and what to run."""


def shard_spec(nshard: int | None, rank: int | None, environ: Mapping[str, str] = os.environ) -> tuple[int, int, bool]:
    """``(nshard, rank, from torchrun)``: the flags, else torchrun's ``WORLD_SIZE`` / ``RANK``, else one
    shard; the third value says that the shard count came from the environment (a torchrun launch, in
    which rank 0 merges at the end)."""
    from_env = nshard is None and "WORLD_SIZE" in environ
    try:
        nshard = nshard if nshard is not None else int(environ.get("WORLD_SIZE", 1))
        rank = rank if rank is not None else int(environ.get("RANK", 0))
    except ValueError as exc:
        raise ConfigError(f"WORLD_SIZE / RANK must be integers ({exc})") from None
    if nshard < 1 or not 0 <= rank < nshard:
        raise ConfigError(f"need nshard >= 1 and 0 <= rank < nshard (got nshard={nshard}, rank={rank})")
    return nshard, rank, from_env and nshard > 1


def default_device(environ: Mapping[str, str] = os.environ) -> str:
    """``cuda:LOCAL_RANK`` (one GPU per process of a node) when CUDA is available, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def rank_of(index: int, chunk_size: int, nshard: int) -> int:
    """The shard that scores input ``index``."""
    return (index // chunk_size) % nshard


def shard_entries(entries: Iterable[Entry], chunk_size: int, nshard: int, rank: int) -> Iterator[Entry]:
    """The entries shard ``rank`` of ``nshard`` scores, in input order."""
    for index, entry in enumerate(entries):
        if rank_of(index, chunk_size, nshard) == rank:
            yield entry


def shard_size(total: int, chunk_size: int, nshard: int, rank: int) -> int:
    """How many of ``total`` inputs shard ``rank`` scores."""
    whole, rest = divmod(total, chunk_size)  # whole chunks, and the inputs of a last short one
    count = (whole // nshard + (rank < whole % nshard)) * chunk_size
    return count + (rest if whole % nshard == rank else 0)


def part_target(out: str, nshard: int, rank: int) -> Target:
    return Target(f"{out}.part-{rank}-of-{nshard}")


def part_paths(out: str, nshard: int, rank: int) -> list[str]:
    """Every file shard ``rank`` writes (for the up-front writability check)."""
    part = part_target(out, nshard, rank)
    return part.files() + [part.lock]


def wait_for_parts(out: str, nshard: int, log: Callable[[str], None] = print) -> None:
    """Wait until every part of ``out`` is finished (its ``.done`` is there). Under torchrun a rank that
    dies ends the whole launch, so there is no time limit."""
    said = False
    while True:
        waiting = [r for r in range(nshard) if not os.path.exists(part_target(out, nshard, r).done)]
        if not waiting:
            return
        if not said:
            log(f"waiting for rank(s) {', '.join(map(str, waiting))} to finish their parts, then merging")
            said = True
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def _part_locks(parts: list[Target]):
    """Every part's lock (a rank that is still writing its part is refused, named); a rank that has just
    finished gets a moment to let go of its lock."""
    with contextlib.ExitStack() as stack:
        for part in parts:
            deadline = time.monotonic() + (LOCK_GRACE_SECONDS if os.path.exists(part.done) else 0)
            while True:
                try:
                    stack.enter_context(RunLock(part.lock, f"part {part.path}"))
                    break
                except LockHeldError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        yield


def _format_of(record: dict) -> ScoreFormat:
    columns = record["output"]["columns"]
    classes = tuple(c[2:] for c in columns if c.startswith("p:"))
    return ScoreFormat(record["output"]["format"] == "jsonl", "score" in columns, classes, "pred_std" in columns)


def check_parts(out: str, nshard: int) -> tuple[list[Target], dict]:
    """The parts of ``out`` and their (common) run record; :class:`MergeError` names a part that is
    missing or unfinished, or one written with other settings."""
    parts = [part_target(out, nshard, r) for r in range(nshard)]
    records = []
    for rank, part in enumerate(parts):
        rerun = f"rerun rank {rank} (the same command with --rank {rank} --nshard {nshard}), then merge"
        record = read_json(part.run_json)
        if not os.path.exists(part.path) or record is None:
            raise MergeError(f"part {rank} of {nshard} ({part.path}) is missing; {rerun}")
        if not os.path.exists(part.done):
            raise MergeError(f"part {rank} of {nshard} ({part.path}) is incomplete (no {part.done}); {rerun}")
        if record.get("shard") != {"nshard": nshard, "rank": rank}:
            raise MergeError(f"{part.run_json}: written as shard {record.get('shard')}, not {rank} of {nshard}")
        records.append(record)
    for rank, record in enumerate(records[1:], start=1):
        changed = differences(records[0], record, ("kind", "version", "model", "output", "settings"))
        if changed:
            raise MergeError(
                f"parts 0 and {rank} of {out} were written by other models or settings ({'; '.join(changed)}); "
                "score them again alike (--overwrite)"
            )
    return parts, records[0]


def merge_parts(out: str, nshard: int, entries: Callable[[], Iterator[Entry]]) -> tuple[Totals, ScoreFormat]:
    """Write ``out`` (and its sidecar and run record) from the finished parts of ``nshard`` shards, in
    input order (``entries()`` enumerates the inputs again, all of them); remove the parts. The caller
    holds ``out``'s lock."""
    final = Target(out)
    recover(final)
    parts, record = check_parts(out, nshard)
    fmt = _format_of(record)
    chunk_size = int(record["settings"]["chunk_size"])
    totals = Totals()
    with _part_locks(parts):
        for rank, part in enumerate(parts):
            if not starts_with(part.path, fmt.header()) or not starts_with(part.sidecar, SIDECAR_HEADER):
                raise MergeError(f"part {rank} of {nshard} ({part.path}) lacks its header; score it again")
        readers = [DoneRecords(part, fmt) for part in parts]
        new_out, new_side = final.path + ".new", final.sidecar + ".new"
        try:
            with open(new_out, "wb") as handle, open(new_side, "wb") as side:
                handle.write(fmt.header())
                side.write(SIDECAR_HEADER)
                for index, entry in enumerate(entries()):
                    rank = rank_of(index, chunk_size, nshard)
                    taken = readers[rank].take(entry)
                    if taken is None:
                        raise MergeError(
                            f"part {rank} of {nshard} ({parts[rank].path}) holds no row for input {index + 1} "
                            f"({entry.wav_path}): it is incomplete, or was scored from other inputs; rerun rank "
                            f"{rank} with the inputs given here, then merge"
                        )
                    (handle if taken[0] == "row" else side).write(taken[1])
                    totals.inputs += 1
                    totals.scored += taken[0] == "row"
                    totals.failed += taken[0] == "failed"
                for rank, reader in enumerate(readers):
                    if reader.rows.peek() is not None or reader.failures.peek() is not None:
                        raise MergeError(
                            f"part {rank} of {nshard} ({parts[rank].path}) holds more rows than these inputs give "
                            "it: it was scored from other inputs"
                        )
                for f in (handle, side):
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            remove_files([new_out, new_side])
            raise
        finally:
            for reader in readers:
                reader.close()
        merged = dict(record, shard=None, finished=totals.finished())
        write_json(final.run_json + ".new", merged)
        commit(final, [(new_out, final.path), (new_side, final.sidecar), (final.run_json + ".new", final.run_json)])
        for part in parts:
            remove_files(part.files())
    return totals, fmt


def already_merged(out: str, record: dict, fmt: ScoreFormat, entries: Callable[[], Iterator[Entry]]) -> bool:
    """Whether ``out`` is a finished merge of these inputs with these settings, so that a rerun of a finished
    sharded job has nothing to do (False: no ``out`` yet). An ``out`` the shards' merge would replace, and
    should not, is refused (:class:`~distilmos.predictor.streaming.ResumeError`): another run's output, one
    of other settings or inputs, an unfinished one-process output."""
    final = Target(out)
    if not os.path.exists(final.path):
        return False
    old = read_json(final.run_json)
    if old is None or old.get("kind") != record["kind"]:
        raise ResumeError(
            f"{out} exists and is not an output of a resumable distilmos-predict score run; give --overwrite to "
            "replace it, or another -o"
        )
    changed = differences(old, dict(record, shard=None))
    if changed:
        raise ResumeError(
            f"{out} was written by another model or with other settings ({'; '.join(changed)}); rerun with the "
            "same ones, or give --overwrite to score it afresh"
        )
    if not old.get("finished"):
        raise ResumeError(
            f"{out} is an unfinished one-process output; continue it with the same command without --nshard, "
            "or give --overwrite to score it afresh in shards"
        )
    records = DoneRecords(final, fmt)
    try:
        complete = all(records.take(entry) for entry in entries())
        complete = complete and records.rows.peek() is None and records.failures.peek() is None
    finally:
        records.close()
    if not complete:
        raise ResumeError(
            f"{out} is a finished output of other inputs; score these into another output (-o), or give "
            "--overwrite to score them into this one afresh"
        )
    return True


def log(message: str) -> None:
    print(f"distilmos-predict: {message}", file=sys.stderr, flush=True)
