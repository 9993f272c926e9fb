"""What ``distilmos-predict score`` reads: audio files, folders, data list CSVs and plain lists.

- an audio file (``.wav .flac .ogg ...``): itself;
- a folder: every audio file under it (recursively, sorted by path);
- a ``.csv`` file: a data list with a ``wav_path`` column (absolute, or relative to the CSV's folder) and
  optionally ``score`` and ``system_id`` (``sample_id,system_id,wav_path,score`` is the toolkit's format);
- any other file: a plain list, one ``wav[,score[,system]]`` per line (commas or spaces; a header line is
  recognised), paths relative to the list's folder.

Without a system column, an utterance's system is the part of its file stem before ``system_delim``
(BVCC: ``-``), or the stem itself. A path that does not exist is kept as an input, so that it is reported
with the other files that cannot be scored.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

from distilmos.data.datalist import (
    AUDIO_EXTENSIONS,
    ListEncodingError,
    looks_like_header,
    open_list,
    resolve_wav_path,
    rows_from_score_list,
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


def read_csv_list(path: str, system_delim: str | None = None) -> list[Entry]:
    """A data list CSV (needs a ``wav_path`` column; ``score``, ``system_id`` optional)."""
    base = os.path.dirname(os.path.abspath(path))
    with open_list(path) as handle:
        reader = csv.DictReader(handle)
        if "wav_path" not in (reader.fieldnames or []):
            raise InputError(f"{path}: a CSV list needs a wav_path column (header: {reader.fieldnames})")
        problems: list[str] = []
        entries = []
        for line, record in enumerate(reader, start=2):
            wav = (record.get("wav_path") or "").strip()
            if not wav:
                problems.append(f"  {path}:{line}: empty wav_path")
                continue
            wav = resolve_wav_path(wav, base)
            system = (record.get("system_id") or "").strip() or system_rule(system_delim)(_stem(wav))
            entries.append(Entry(wav, _parse_score(record.get("score"), f"{path}:{line}", problems), system))
    if problems:
        raise InputError(f"{path}: {len(problems)} bad row(s):\n" + "\n".join(problems))
    return entries


def read_text_list(path: str, system_delim: str | None = None) -> list[Entry]:
    """A plain ``wav[,score[,system]]`` list."""
    try:
        rows = rows_from_score_list(
            path, os.path.dirname(os.path.abspath(path)), system_rule(system_delim), skip_header=looks_like_header(path)
        )
    except ListEncodingError as exc:
        raise InputError(
            f"{path}: neither an audio file (by its extension) nor a text list of audio files ({exc})"
        ) from exc
    problems: list[str] = []
    entries = [Entry(row.wav_path, _parse_score(row.score, row.origin, problems), row.system_id) for row in rows]
    if problems:
        raise InputError(f"{path}: {len(problems)} bad row(s):\n" + "\n".join(problems))
    return entries


def folder_audio(folder: str) -> list[str]:
    """Every audio file under ``folder``, sorted by path."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(files) if is_audio(name))
    return found


def collect(inputs: Iterable[str], system_delim: str | None = None) -> list[Entry]:
    """The entries of every input, in the order given (see the module docstring)."""
    entries: list[Entry] = []
    rule = system_rule(system_delim)
    for item in inputs:
        if os.path.isdir(item):
            entries.extend(Entry(p, None, rule(_stem(p))) for p in folder_audio(item))
        elif not os.path.isfile(item) or is_audio(item):
            entries.append(Entry(item, None, rule(_stem(item))))
        elif item.lower().endswith(".csv"):
            entries.extend(read_csv_list(item, system_delim))
        else:
            entries.extend(read_text_list(item, system_delim))
    return entries
