"""What ``distilmos-predict score`` reads: audio files, folders, data list CSVs and plain lists.

- an audio file (``.wav .flac .ogg ...``): itself;
- a folder: every audio file under it (recursively: a folder's files sorted by name, then its subfolders);
- a ``.csv`` file: a data list with a ``wav_path`` column (absolute, or relative to the CSV's folder) and
  optionally ``score`` and ``system_id`` (``sample_id,system_id,wav_path,score`` is the toolkit's format);
- any other file: a plain list, one ``wav[,score[,system]]`` per line (commas or spaces; a header line is
  recognised), paths relative to the list's folder.

Without a system column, an utterance's system is the part of its file stem before ``system_delim``
(BVCC: ``-``), or the stem itself. A path that does not exist is kept as an input, so that it is reported
with the other files that cannot be scored.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from distilmos.data.datalist import (
    AUDIO_EXTENSIONS,
    ListEncodingError,
    iter_list_lines,
    iter_score_list,
    looks_like_header,
    resolve_wav_path,
)
from distilmos.data.score_list import system_rule
from distilmos.errors import ToolkitError


class InputError(ToolkitError, ValueError):
    """A list with rows that cannot be read; the message names every bad row."""


@dataclass
class Entry:
    """One input to score: the audio file, its true score and system when the list gives them."""

    wav_path: str
    score: float | None = None
    system_id: str | None = None


def is_audio(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in AUDIO_EXTENSIONS


def _parse_score(raw: str | None, origin: str, problems: list[str]) -> float | None:
    if raw is None or not str(raw).strip():
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problems.append(f"  {origin}: score {raw!r} is not a finite number")
        return None
    return value


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


#: bad rows a list's error message names one by one (the count says how many there are in all)
SHOWN_PROBLEMS = 20


def _raise_problems(path: str, problems: list[str], count: int) -> None:
    if count:
        more = f"\n  ... and {count - len(problems)} more" if count > len(problems) else ""
        raise InputError(f"{path}: {count} bad row(s):\n" + "\n".join(problems) + more)


class _Problems(list):
    """The bad rows of one list: the first :data:`SHOWN_PROBLEMS` kept, all counted."""

    count = 0

    def append(self, problem: str) -> None:
        self.count += 1
        if len(self) < SHOWN_PROBLEMS:
            super().append(problem)


def iter_csv_list(path: str, system_delim: str | None = None) -> Iterator[Entry]:
    """A data list CSV (needs a ``wav_path`` column; ``score``, ``system_id`` optional), streamed; its bad
    rows are raised together (:class:`InputError`) after its last good one."""
    base = os.path.dirname(os.path.abspath(path))
    rule = system_rule(system_delim)
    with contextlib.closing(iter_list_lines(path)) as lines:
        reader = csv.DictReader(lines)
        if "wav_path" not in (reader.fieldnames or []):
            raise InputError(f"{path}: a CSV list needs a wav_path column (header: {reader.fieldnames})")
        problems = _Problems()
        for line, record in enumerate(reader, start=2):
            wav = (record.get("wav_path") or "").strip()
            if not wav:
                problems.append(f"  {path}:{line}: empty wav_path")
                continue
            wav = resolve_wav_path(wav, base)
            system = (record.get("system_id") or "").strip() or rule(_stem(wav))
            yield Entry(wav, _parse_score(record.get("score"), f"{path}:{line}", problems), system)
    _raise_problems(path, problems, problems.count)


def iter_text_list(path: str, system_delim: str | None = None) -> Iterator[Entry]:
    """A plain ``wav[,score[,system]]`` list, streamed (bad rows as in :func:`iter_csv_list`)."""
    try:
        header = looks_like_header(path)
        rows = iter_score_list(
            path, os.path.dirname(os.path.abspath(path)), system_rule(system_delim), skip_header=header
        )
        problems = _Problems()
        for row in rows:
            yield Entry(row.wav_path, _parse_score(row.score, row.origin, problems), row.system_id)
    except ListEncodingError as exc:
        raise InputError(
            f"{path}: neither an audio file (by its extension) nor a text list of audio files ({exc})"
        ) from exc
    _raise_problems(path, problems, problems.count)


def read_csv_list(path: str, system_delim: str | None = None) -> list[Entry]:
    """:func:`iter_csv_list` as a list."""
    return list(iter_csv_list(path, system_delim))


def read_text_list(path: str, system_delim: str | None = None) -> list[Entry]:
    """:func:`iter_text_list` as a list."""
    return list(iter_text_list(path, system_delim))


def iter_folder_audio(folder: str) -> Iterator[str]:
    """Every audio file under ``folder``, walked lazily: a folder's files (sorted), then its subfolders
    (sorted), depth first."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        yield from (os.path.join(root, name) for name in sorted(files) if is_audio(name))


def folder_audio(folder: str) -> list[str]:
    """:func:`iter_folder_audio` as a list."""
    return list(iter_folder_audio(folder))


def iter_entries(inputs: Iterable[str], system_delim: str | None = None) -> Iterator[Entry]:
    """The entries of every input, in the order given (see the module docstring), read lazily: folders are
    walked and lists read as the entries are taken, so that memory does not grow with their length. A
    list's bad rows raise :class:`InputError` after its good ones: consume the iterator once before the
    work (:func:`count_entries`) to refuse them up front."""
    rule = system_rule(system_delim)
    for item in inputs:
        if os.path.isdir(item):
            yield from (Entry(p, None, rule(_stem(p))) for p in iter_folder_audio(item))
        elif not os.path.isfile(item) or is_audio(item):
            yield Entry(item, None, rule(_stem(item)))
        elif item.lower().endswith(".csv"):
            yield from iter_csv_list(item, system_delim)
        else:
            yield from iter_text_list(item, system_delim)


def collect(inputs: Iterable[str], system_delim: str | None = None) -> list[Entry]:
    """The entries of every input, in the order given, as a list (:func:`iter_entries` streams them)."""
    return list(iter_entries(inputs, system_delim))
