"""Scores streamed to a file as they come, resumable after any kill: what ``distilmos-predict score -o`` writes.

Files of an output ``OUT`` (a one-process run; a shard writes the same set under ``OUT.part-R-of-N``,
see :mod:`distilmos.predictor.shards`):

- ``OUT``: CSV (``wav_path,pred[,score][,top_system,top_system_prob,p:<system>...]``, one header line) or
  JSON lines, one row per scored input, in input order. Rows are appended chunk by chunk
  (:meth:`~distilmos.predictor.predictor.Predictor.score_chunks`) and flushed after each chunk, so after any
  kill the file is a prefix of the finished one (plus, at most, a torn last line);
- ``OUT.failed.tsv``: the inputs that could not be scored, ``wav_path<TAB>reason`` after a header line, in
  input order (tabs and line breaks inside a field written as ``\\t``, ``\\n``, ``\\r``). A chunk's failures
  are written and flushed BEFORE its rows, so the sidecar is complete up to the output's last row;
- ``OUT.run.json``: what the rows depend on (the model's sha256, the output format and columns, the
  windowing, batching and chunk settings, the shard) and, once finished, the counts; a rerun with other
  values is refused (``--overwrite`` starts afresh);
- ``OUT.lock`` while a run writes (:class:`distilmos.locks.RunLock`).

Resume: the inputs are enumerated again and matched, in order, against the rows of ``OUT`` and the
entries of the sidecar (an input is done when it is the next row or the next failure; a torn last line
of either file is not a row). Both files are cut back to the end of the last chunk whose inputs are all
done, and scoring goes on from the next chunk: chunks are fixed runs of ``chunk_size`` inputs, so every
chunk is scored in the same batches as in an uninterrupted run and the finished files are byte-identical
to one. A complete row that does not belong to its input means the inputs changed: refused, naming both.
``--retry_failed`` scores the sidecar's inputs again and rewrites both files in one streaming pass, in
input order; the new pair replaces the old through a commit record, so a kill at any point leaves either
the old pair or the new one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from distilmos.errors import OutputError, ToolkitError
from distilmos.fileio import atomic_write, sha256_file

from .inputs import Entry

#: file names that are not UTF-8 (a str holding surrogate escapes, as os.walk gives them) are written as
#: their own bytes, and read back alike
PATH_ERRORS = "surrogateescape"
#: the sidecar's header line
SIDECAR_HEADER = b"wav_path\treason\n"
#: how often the output is forced to disk (a flush after each chunk already survives a killed process;
#: fsync is for a machine that goes down)
FSYNC_SECONDS = 30.0
#: the run record's kind and version
RUN_KIND, RUN_VERSION = "distilmos-predict score", 1
#: run record keys that must agree for a run to continue an output (the others are informative)
COMPARED_KEYS = ("kind", "version", "model", "output", "settings", "shard")


class ResumeError(ToolkitError, ValueError):
    """An existing output that this run cannot continue; the message says why and that --overwrite starts
    afresh."""


# ---- the files of one output ------------------------------------------------------------------------------


class _Beside:
    """A companion file of a :class:`Target`, read as an attribute: the target's path and ``suffix``."""

    def __init__(self, suffix: str):
        self.suffix = suffix

    def __get__(self, target: Target | None, owner: type | None = None):
        return self if target is None else target.path + self.suffix


@dataclass(frozen=True)
class Target:
    """One output being written (the final output, or one shard's part) and its companion files."""

    path: str

    sidecar = _Beside(".failed.tsv")
    run_json = _Beside(".run.json")
    lock = _Beside(".lock")
    #: a shard's part: written once the part is finished (what a merge waits for)
    done = _Beside(".done")
    commit = _Beside(".commit.json")

    def files(self) -> list[str]:
        """Every file a run into this target leaves (the lock aside)."""
        return [self.path, self.sidecar, self.run_json, self.done]

    def scratch(self) -> list[str]:
        """Files of an unfinished --retry_failed or merge (removed, or committed, before a run)."""
        retry = Target(self.path + ".retry")
        return [retry.path, retry.sidecar, self.path + ".new", self.sidecar + ".new", self.run_json + ".new"]


def escape_field(text: str) -> str:
    """A sidecar field: tabs and line breaks spelled out, so that a record is one line."""
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# ---- the output format ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreFormat:
    """The rows of an output: CSV or JSON lines, with the true score (``with_score``) and the system
    posterior (``classes``) when asked for, and the predicted std (``with_std``) of a model with an
    uncertainty head."""

    jsonl: bool = False
    with_score: bool = False
    classes: tuple[str, ...] = ()
    with_std: bool = False

    def columns(self) -> list[str]:
        columns = (
            ["wav_path", "pred"] + (["pred_std"] if self.with_std else []) + (["score"] if self.with_score else [])
        )
        if self.classes:
            columns += ["top_system", "top_system_prob"] + [f"p:{c}" for c in self.classes]
        return columns

    def header(self) -> bytes:
        return b"" if self.jsonl else _csv_line(self.columns())

    def _top(self, result) -> tuple[str, float]:
        best = max(range(len(self.classes)), key=result.posterior.__getitem__)
        return self.classes[best], result.posterior[best]

    def row(self, entry: Entry, result) -> bytes:
        """The output row of a scored input."""
        if self.jsonl:
            record = {"wav_path": entry.wav_path, "pred": round(result.pred, 6)}
            if self.with_std:
                record["pred_std"] = round(result.std, 6)
            if self.with_score:
                record["score"] = entry.score
            if self.classes:
                record["top_system"], prob = self._top(result)
                record["top_system_prob"] = round(prob, 6)
                record["system_posterior"] = {c: round(p, 6) for c, p in zip(self.classes, result.posterior)}
            return (json.dumps(record) + "\n").encode("utf-8", PATH_ERRORS)
        row = [entry.wav_path, f"{result.pred:.6f}"] + ([f"{result.std:.6f}"] if self.with_std else [])
        if self.with_score:
            row.append("" if entry.score is None else repr(entry.score))
        if self.classes:
            name, prob = self._top(result)
            row += [name, f"{prob:.6f}"] + [f"{p:.6f}" for p in result.posterior]
        return _csv_line(row)

    def entry_key(self, entry: Entry) -> tuple[str, str]:
        """What a row says of its input (path and true score): how rows are matched to inputs."""
        return entry.wav_path, "" if not self.with_score or entry.score is None else repr(float(entry.score))

    def parse(self, record: bytes) -> tuple[tuple[str, str], float, float | None] | None:
        """``(entry key, pred, std or None)`` of a complete row, or None when it is not a row of this format."""
        try:
            text = record.decode("utf-8", PATH_ERRORS)
            if self.jsonl:
                values = json.loads(text)
                score = values.get("score") if self.with_score else None
                std = float(values["pred_std"]) if self.with_std else None
                return (values["wav_path"], "" if score is None else repr(float(score))), float(values["pred"]), std
            fields = next(csv.reader(io.StringIO(text, newline="")))
            score = fields[2 + self.with_std] if self.with_score else ""
            return (fields[0], score), float(fields[1]), float(fields[2]) if self.with_std else None
        except (ValueError, KeyError, IndexError, TypeError, StopIteration, AttributeError):
            return None


def _csv_line(fields: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue().encode("utf-8", PATH_ERRORS)


# ---- reading records back ---------------------------------------------------------------------------------


class RecordReader:
    """The complete records of a file from ``start`` on, one at a time, with the offset after each; a last
    piece without its line end (or, in CSV, inside an open quote) is a torn record and is not returned."""

    def __init__(self, path: str, start: int, quoted: bool):
        self.quoted = quoted
        self.offset = start  # end of the last record taken
        self._handle = open(path, "rb") if os.path.exists(path) else None
        if self._handle:
            self._handle.seek(start)
        self._next: bytes | None = None
        self._read()

    def _read(self) -> None:
        self._next = None
        if self._handle is None:
            return
        record = self._handle.readline()
        # a CSV field may hold a line break inside quotes: the record goes on until the quotes close
        while self.quoted and record.endswith(b"\n") and record.count(b'"') % 2:
            more = self._handle.readline()
            if not more:
                break
            record += more
        if record.endswith(b"\n") and not (self.quoted and record.count(b'"') % 2):
            self._next = record

    def peek(self) -> bytes | None:
        return self._next

    def take(self) -> bytes:
        record = self._next
        self.offset += len(record)
        self._read()
        return record

    def close(self) -> None:
        if self._handle:
            self._handle.close()


def sidecar_path_of(record: bytes) -> str | None:
    """The (escaped) path of a sidecar record."""
    path, tab, _ = record.decode("utf-8", PATH_ERRORS).partition("\t")
    return path if tab else None


class DoneRecords:
    """An output's rows and its sidecar's failures, taken in step with the inputs they were written for."""

    def __init__(self, target: Target, fmt: ScoreFormat):
        self.fmt = fmt
        self.rows = RecordReader(target.path, len(fmt.header()), quoted=not fmt.jsonl)
        self.failures = RecordReader(target.sidecar, len(SIDECAR_HEADER), quoted=False)

    def take(self, entry: Entry) -> tuple[str, bytes, tuple[float, float | None] | None] | None:
        """``("row", record, (pred, std or None))`` or ``("failed", record, None)`` when ``entry`` is done, else
        None."""
        record = self.rows.peek()
        if record is not None:
            parsed = self.fmt.parse(record)
            if parsed and parsed[0] == self.fmt.entry_key(entry):
                return "row", self.rows.take(), parsed[1:]
        record = self.failures.peek()
        if record is not None and sidecar_path_of(record) == escape_field(entry.wav_path):
            return "failed", self.failures.take(), None
        return None

    def close(self) -> None:
        self.rows.close()
        self.failures.close()


@dataclass
class Counts:
    """The inputs an output holds: ``inputs`` = ``scored`` + ``failed``."""

    inputs: int = 0
    scored: int = 0
    failed: int = 0

    def finished(self) -> dict[str, int]:
        """The counts a finished output records (its run record's ``finished``, a shard part's ``.done``)."""
        return {"inputs": self.inputs, "scored": self.scored, "failed": self.failed}


@dataclass
class Done(Counts):
    """How far an output goes: inputs done (scored + failed) and where its two files end."""

    out_offset: int = 0
    side_offset: int = 0


def match_done(target: Target, fmt: ScoreFormat, entries: Iterable[Entry], chunk_size: int) -> Done:
    """How many whole chunks of ``entries`` ``target`` holds, and where its files end after them (see the
    module docstring). Raises :class:`ResumeError` when a complete row does not belong to its input."""
    records = DoneRecords(target, fmt)
    try:
        safe = Done(0, 0, 0, records.rows.offset, records.failures.offset)
        scored = failed = n = 0
        iterator = iter(entries)
        stopped_at: Entry | None = None
        for n, entry in enumerate(iterator, start=1):
            taken = records.take(entry)
            if taken is None:
                stopped_at, n = entry, n - 1
                break
            scored += taken[0] == "row"
            failed += taken[0] == "failed"
            if n % chunk_size == 0:
                safe = Done(n, scored, failed, records.rows.offset, records.failures.offset)
        else:  # every input is done: the last chunk is whole however short it is
            safe = Done(n, scored, failed, records.rows.offset, records.failures.offset)
            if records.failures.peek() is not None:
                raise _changed(target.sidecar, records.failures.peek(), n, None)
        if records.rows.peek() is not None:
            raise _changed(target.path, records.rows.peek(), n, stopped_at)
        return safe
    finally:
        records.close()


def _changed(path: str, record: bytes, matched: int, entry: Entry | None) -> ResumeError:
    text = record.decode("utf-8", "replace").strip()
    what = f"input {matched + 1} is {entry.wav_path}" if entry else f"there are only {matched} inputs"
    return ResumeError(
        f"{path}: its row {text[:200]!r} does not follow the inputs ({what}): they are not the inputs this "
        "output was written for (a file added, removed or reordered?); score them into another output (-o), or "
        "give --overwrite to start this one afresh"
    )


# ---- the run record ---------------------------------------------------------------------------------------


def model_identity(model: str) -> dict:
    """What names the model's weights in a run record: a file's sha256, else the id it was loaded by."""
    if os.path.isfile(model):
        return {"sha256": sha256_file(model)}
    return {"id": str(model)}


def run_record(model: str, fmt: ScoreFormat, settings: dict, shard: dict | None, **info) -> dict:
    """The run record of an output (``OUT.run.json``): :data:`COMPARED_KEYS` and informative ``info``."""
    return {
        "kind": RUN_KIND,
        "version": RUN_VERSION,
        "model": model_identity(model),
        "output": {"format": "jsonl" if fmt.jsonl else "csv", "columns": fmt.columns()},
        "settings": settings,
        "shard": shard,
        **info,
        "finished": None,
    }


def read_json(path: str) -> dict | None:
    """A JSON object file, or None when it is missing or unreadable (a torn write is not possible: they are
    written atomically, but a user may have edited one)."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: str, value: dict) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.write("\n")


def differences(old: dict, new: dict, keys: Sequence[str] = COMPARED_KEYS) -> list[str]:
    """``key: was X, now Y`` for each compared key (nested keys spelt out) that differs."""
    found = []

    def walk(prefix: str, a, b) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(f"{prefix}.{key}", a.get(key), b.get(key))
        elif a != b:
            found.append(f"{prefix[1:]}: was {json.dumps(a)}, now {json.dumps(b)}")

    for key in keys:
        walk(f".{key}", old.get(key), new.get(key))
    return found


# ---- writing ----------------------------------------------------------------------------------------------


class ChunkWriter:
    """Appends chunks to an output and its sidecar from where ``done`` says they end (cutting anything
    after): failures first, then rows, each flushed; forced to disk every :data:`FSYNC_SECONDS` and at
    :meth:`close`."""

    def __init__(self, target: Target, fmt: ScoreFormat, done: Done):
        self.fmt = fmt
        self.out = _open_at(target.path, done.out_offset)
        self.side = _open_at(target.sidecar, done.side_offset)
        self._synced = time.monotonic()

    def write(self, entries: Sequence[Entry], results: Sequence) -> None:
        failed = [r for r in results if not r.ok]
        if failed:
            self.side.write(b"".join(_failure_line(r) for r in failed))
            self.side.flush()
        self.out.write(b"".join(self.fmt.row(e, r) for e, r in zip(entries, results) if r.ok))
        self.out.flush()
        if time.monotonic() - self._synced > FSYNC_SECONDS:
            self.sync()

    def sync(self) -> None:
        for handle in (self.side, self.out):
            handle.flush()
            os.fsync(handle.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        self.sync()
        self.out.close()
        self.side.close()


def _failure_line(result) -> bytes:
    reason = result.error or ""
    prefix = f"{result.path}: "  # the reason names the file already; the first column does
    reason = reason[len(prefix) :] if reason.startswith(prefix) else reason
    return f"{escape_field(result.path)}\t{escape_field(reason)}\n".encode("utf-8", PATH_ERRORS)


def _open_at(path: str, offset: int):
    handle = open(path, "r+b")
    handle.truncate(offset)
    handle.seek(offset)
    return handle


def start_files(target: Target, fmt: ScoreFormat) -> Done:
    """Fresh output and sidecar holding their headers."""
    with open(target.path, "wb") as out:
        out.write(fmt.header())
    with open(target.sidecar, "wb") as side:
        side.write(SIDECAR_HEADER)
    return Done(0, 0, 0, len(fmt.header()), len(SIDECAR_HEADER))


def starts_with(path: str, header: bytes) -> bool | None:
    """True when ``path`` starts with ``header``; None when it is a torn piece of it (or empty)."""
    with open(path, "rb") as handle:
        head = handle.read(len(header))
    if head == header:
        return True
    return None if header.startswith(head) else False


# ---- commits of several files at once ---------------------------------------------------------------------


def commit(target: Target, moves: Sequence[tuple[str, str]]) -> None:
    """Rename each finished ``(scratch file, destination)`` into place as one step: a commit record is
    written first, so that a run killed halfway finishes the renames the next time (:func:`recover`)."""
    write_json(target.commit, {"moves": [list(m) for m in moves]})
    _apply(target)


def _apply(target: Target) -> None:
    record = read_json(target.commit) or {}
    for source, destination in record.get("moves", []):
        if os.path.exists(source):
            os.replace(source, destination)
    with contextlib.suppress(FileNotFoundError):
        os.remove(target.commit)


def recover(target: Target) -> None:
    """Finish a commit a killed run left halfway, then remove the scratch files of any unfinished one."""
    if os.path.exists(target.commit):
        _apply(target)
    remove_files(target.scratch())


def remove_files(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


# ---- one run into one target ------------------------------------------------------------------------------


@dataclass
class Totals(Counts):
    """What one output holds when a run ends: inputs, scored, failed; and of them, what this run scored."""

    new: int = 0
    windowed: int = 0
    retried: int = 0
    recovered: int = 0


@dataclass
class StreamJob:
    """Everything a streamed run needs beyond the target: how to score, the entries, the record."""

    score_chunks: Callable[..., Iterator[list]]  # Predictor.score_chunks, bound
    entries: Callable[[], Iterator[Entry]]  # a fresh enumeration of this target's inputs
    total: int  # how many entries() gives
    fmt: ScoreFormat
    record: dict  # run_record(...)
    chunk_size: int
    overwrite: bool = False
    retry_failed: bool = False
    score_kwargs: dict = field(default_factory=dict)  # num_workers, posterior, progress


def open_target(target: Target, job: StreamJob) -> Done:
    """Start ``target`` afresh, or check that it may be continued and find where (:func:`match_done`);
    files are cut back to that point by the writer. Raises :class:`ResumeError` for an output this run
    cannot continue."""
    if job.overwrite or not os.path.exists(target.path):
        remove_files(target.files())
        write_json(target.run_json, job.record)
        return start_files(target, job.fmt)
    old = read_json(target.run_json)
    if old is None or old.get("kind") != RUN_KIND:
        raise ResumeError(
            f"{target.path} exists and is not an output of a resumable distilmos-predict score run (no "
            f"{os.path.basename(target.run_json)} beside it); give --overwrite to replace it, or another -o"
        )
    changed = differences(old, job.record)
    if changed:
        raise ResumeError(
            f"{target.path} was written by another model or with other settings ({'; '.join(changed)}); "
            "rerun with the same ones to continue it, or give --overwrite to start it afresh"
        )
    header = job.fmt.header()
    state = starts_with(target.path, header)
    if state is None:  # killed before the header was whole: nothing was scored
        return start_files(target, job.fmt)
    if state is False:
        raise ResumeError(f"{target.path}: its header is not {header.decode().strip()!r}; give --overwrite")
    if not os.path.exists(target.sidecar) or not starts_with(target.sidecar, SIDECAR_HEADER):
        with open(target.sidecar, "wb") as side:  # lost or torn: the output alone says what was scored
            side.write(SIDECAR_HEADER)
    return match_done(target, job.fmt, job.entries(), job.chunk_size)


def run_target(target: Target, job: StreamJob, on_results: Callable | None = None) -> Totals:
    """Score ``job``'s entries into ``target``: resume where it ends (or start), optionally retry its
    failures, append the rest chunk by chunk; record the counts in its run record. The caller holds the
    target's lock."""
    recover(target)
    with contextlib.suppress(FileNotFoundError):
        os.remove(target.done)
    done = open_target(target, job)
    write_json(target.run_json, job.record)  # unfinished until this run ends (and the informative keys are its)
    totals = Totals(recovered=done.inputs)
    if job.retry_failed and done.failed:
        done, totals.retried = retry_failed(target, job, done)
    writer = ChunkWriter(target, job.fmt, done)
    pending: list[Entry] = []
    entries = itertools.islice(job.entries(), done.inputs, None)

    def paths() -> Iterator[str]:
        for entry in entries:
            pending.append(entry)
            yield entry.wav_path

    try:
        for results in job.score_chunks(
            paths(), chunk_size=job.chunk_size, total=job.total, initial=done.inputs, **job.score_kwargs
        ):
            chunk = pending[: len(results)]
            del pending[: len(results)]
            writer.write(chunk, results)
            for result in results:
                done.inputs += 1
                done.scored += result.ok
                done.failed += not result.ok
                totals.new += 1
                totals.windowed += result.ok and result.windows > 1
            if on_results:
                on_results(chunk, results)
    finally:
        writer.close()
    totals.inputs, totals.scored, totals.failed = done.inputs, done.scored, done.failed
    write_json(target.run_json, dict(job.record, finished=done.finished()))
    return totals


def retry_failed(target: Target, job: StreamJob, done: Done) -> tuple[Done, int]:
    """Score the inputs of ``target``'s sidecar (up to ``done``) again, then rewrite the output and the
    sidecar in input order in one streaming pass, committed together. Returns the new :class:`Done` and
    how many failed inputs were retried."""
    retry = Target(target.path + ".retry")
    fresh = start_files(retry, job.fmt)

    def failed_entries() -> Iterator[Entry]:
        records = DoneRecords(target, job.fmt)
        try:
            for entry in itertools.islice(job.entries(), done.inputs):
                if records.take(entry)[0] == "failed":
                    yield entry
        finally:
            records.close()

    writer = ChunkWriter(retry, job.fmt, fresh)
    pending: list[Entry] = []

    def paths() -> Iterator[str]:
        for entry in failed_entries():
            pending.append(entry)
            yield entry.wav_path

    try:
        kwargs = dict(job.score_kwargs, total=done.failed)
        for results in job.score_chunks(paths(), chunk_size=job.chunk_size, **kwargs):
            writer.write(pending[: len(results)], results)
            del pending[: len(results)]
    finally:
        writer.close()

    new_out, new_side = target.path + ".new", target.sidecar + ".new"
    merged = Done()
    old, again = DoneRecords(target, job.fmt), DoneRecords(retry, job.fmt)
    try:
        with open(new_out, "wb") as out, open(new_side, "wb") as side:
            out.write(job.fmt.header())
            side.write(SIDECAR_HEADER)
            for entry in itertools.islice(job.entries(), done.inputs):
                kind, record, _ = old.take(entry)
                if kind == "failed":
                    kind, record, _ = again.take(entry)
                (out if kind == "row" else side).write(record)
                merged.inputs += 1
                merged.scored += kind == "row"
                merged.failed += kind == "failed"
            for handle in (out, side):
                handle.flush()
                os.fsync(handle.fileno())
            merged.out_offset, merged.side_offset = out.tell(), side.tell()
    finally:
        old.close()
        again.close()
    commit(target, [(new_out, target.path), (new_side, target.sidecar)])
    remove_files([retry.path, retry.sidecar])
    return merged, done.failed


def check_output_paths(paths: Iterable[tuple[str, str]]) -> None:
    """Refuse, before any work, output files that cannot be written: ``(path, what it is)`` pairs, checked
    as :func:`distilmos.fileio.check_writable_file` checks them (the folder probe once per folder)."""
    from distilmos.fileio import check_writable_file

    probed = set()
    for path, what in paths:
        if os.path.isdir(path):
            raise OutputError(f"{what} {path} is a folder; give a file name")
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in probed:
            check_writable_file(path, what)
            probed.add(folder)


# ---- reading a finished output back -----------------------------------------------------------------------


def failures(target: Target, limit: int) -> tuple[list[str], int]:
    """The first ``limit`` failures of a sidecar (``path: reason``) and how many it holds."""
    shown, count = [], 0
    reader = RecordReader(target.sidecar, len(SIDECAR_HEADER), quoted=False)
    try:
        while reader.peek() is not None:
            count += 1
            if len(shown) < limit:
                path, _, reason = reader.take().decode("utf-8", "replace").rstrip("\n").partition("\t")
                shown.append(f"{path}: {reason}")
            else:
                reader.take()
    finally:
        reader.close()
    return shown, count


def scored_rows(
    target: Target, fmt: ScoreFormat, entries: Iterable[Entry]
) -> Iterator[tuple[Entry, float, float | None]]:
    """``(entry, pred, std or None)`` of every scored input of a finished output, streamed back in step with its
    inputs."""
    records = DoneRecords(target, fmt)
    try:
        for entry in entries:
            taken = records.take(entry)
            if taken is None:
                raise ResumeError(f"{target.path}: no row or failure for {entry.wav_path}; the output is incomplete")
            if taken[0] == "row":
                yield entry, *taken[2]
    finally:
        records.close()
