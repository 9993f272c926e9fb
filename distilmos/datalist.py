"""The data list CSV (``sample_id,system_id,wav_path,score``): reading, writing and preflight validation.

Every corpus reader (BVCC, SOMOS, a generic list) turns its own files into :class:`Row` objects and
passes them through :func:`validate`, so a bad corpus is reported the same way everywhere: one
:class:`DataListError` that lists every bad row with where it came from, before any long job starts.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .audio import SAMPLE_RATE, AudioError, probe_audio, samples_at_16k
from .errors import ToolkitError
from .fileio import atomic_write

COLUMNS = ("sample_id", "system_id", "wav_path", "score")


class DataListError(ToolkitError, ValueError):
    """A data list (or the corpus files behind it) with problems; the message lists every bad row."""


@dataclass(frozen=True)
class Utterance:
    """One validated utterance: ``wav_path`` is absolute, ``score`` a finite float (NaN when unscored)."""

    sample_id: str
    system_id: str
    wav_path: str
    score: float
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    num_samples: int = field(default=0, compare=False)  # at 16 kHz, from the header; 0 if unchecked
    origin: str = field(default="", compare=False)  # where it was listed ("file:line"), for error messages

    @property
    def duration(self) -> float:
        """Seconds at 16 kHz (0 when the audio was not checked)."""
        return self.num_samples / SAMPLE_RATE


@dataclass
class Row:
    """One raw row as read from some source, before validation.

    ``origin`` says where it came from (``file:line``) so that errors point at it.
    """

    sample_id: str
    system_id: str
    wav_path: str
    score: str | None
    origin: str
    extra: dict[str, str] = field(default_factory=dict)


def _parse_score(raw: str | None) -> float:
    value = float(str(raw).strip())  # ValueError for "abc" and ""
    if not math.isfinite(value):
        raise ValueError(f"score {raw!r} is not finite")
    return value


def validate(
    rows: Iterable[Row],
    source: str,
    *,
    check_audio: bool = True,
    require_score: bool = True,
) -> list[Utterance]:
    """Check every row and return the utterances, or raise one :class:`DataListError` listing all problems.

    Checked: empty ``sample_id``, duplicate ``sample_id``, a score that is missing, non-numeric or not
    finite, and (with ``check_audio``) an audio file that is missing, unreadable, empty or truncated
    (header only, so this is cheap).
    """
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    utterances: list[Utterance] = []
    for row in rows:
        bad = []
        if not row.sample_id:
            bad.append("empty sample_id")
        elif row.sample_id in first_seen:
            bad.append(f"duplicate sample_id {row.sample_id!r} (first at {first_seen[row.sample_id]})")
        else:
            first_seen[row.sample_id] = row.origin
        score = math.nan
        if row.score is None or str(row.score).strip() == "":
            if require_score:
                bad.append("missing score")
        else:
            try:
                score = _parse_score(row.score)
            except ValueError:
                bad.append(f"score {row.score!r} is not a finite number")
        num_samples = 0
        if check_audio:
            try:
                info = probe_audio(row.wav_path)
                num_samples = samples_at_16k(info.frames, info.samplerate)
            except AudioError as exc:
                bad.append(str(exc))
        if bad:
            problems.append(f"  {row.origin} [{row.sample_id or '?'}]: " + "; ".join(bad))
        else:
            utterances.append(
                Utterance(row.sample_id, row.system_id, row.wav_path, score, dict(row.extra), num_samples, row.origin)
            )
    if problems:
        raise DataListError(f"{source}: {len(problems)} bad row(s):\n" + "\n".join(problems))
    if not utterances:
        raise DataListError(f"{source}: no utterances")
    return utterances


def resolve_wav_path(wav_path: str, base_dir: str) -> str:
    """An absolute path for ``wav_path``, which may be relative to ``base_dir`` (the list's folder)."""
    wav_path = os.path.expanduser(wav_path)
    return os.path.normpath(wav_path if os.path.isabs(wav_path) else os.path.join(base_dir, wav_path))


def read_rows(csv_path: str) -> list[Row]:
    """Read a data list CSV into raw rows (no validation beyond the header)."""
    if not os.path.isfile(csv_path):
        raise DataListError(f"{csv_path}: no such data list")
    base_dir = os.path.dirname(os.path.abspath(csv_path))
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in ("sample_id", "wav_path") if c not in header]
        if missing:
            raise DataListError(f"{csv_path}: header {header} lacks column(s) {missing}; expected {','.join(COLUMNS)}")
        rows = []
        for line_no, record in enumerate(reader, start=2):
            extra = {k: v for k, v in record.items() if k not in COLUMNS and k is not None}
            rows.append(
                Row(
                    sample_id=(record.get("sample_id") or "").strip(),
                    system_id=(record.get("system_id") or "").strip(),
                    wav_path=resolve_wav_path((record.get("wav_path") or "").strip(), base_dir),
                    score=record.get("score"),
                    origin=f"{csv_path}:{line_no}",
                    extra=extra,
                )
            )
    return rows


def read_datalist(csv_path: str, *, check_audio: bool = True, require_score: bool = True) -> list[Utterance]:
    """Read and validate a data list CSV; see :func:`validate` for what is checked."""
    return validate(read_rows(csv_path), csv_path, check_audio=check_audio, require_score=require_score)


def write_datalist(csv_path: str, utterances: Sequence[Utterance]) -> None:
    """Write utterances as a data list CSV (atomically). Extra columns of the first row are kept."""
    extra_cols = list(utterances[0].extra) if utterances else []
    with atomic_write(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(COLUMNS) + extra_cols)
        for utt in utterances:
            writer.writerow(
                [utt.sample_id, utt.system_id, utt.wav_path, repr(float(utt.score))]
                + [utt.extra.get(c, "") for c in extra_cols]
            )


def _split_fields(line: str) -> list[str]:
    return [f.strip() for f in (line.split(",") if "," in line else line.split())]


def rows_from_score_list(
    list_path: str,
    wav_dir: str,
    system_of,
    *,
    skip_header: bool = False,
) -> list[Row]:
    """Read a ``wav,score[,system]`` list (BVCC's and SOMOS's ``*_mos_list.txt`` are of this kind).

    ``wav`` is a file name or path relative to ``wav_dir`` (or absolute); ``sample_id`` is its stem;
    the system is the third field when present, else ``system_of(sample_id)``. Fields are separated by
    commas, or by whitespace in a line without commas. Malformed lines become rows that
    :func:`validate` reports.
    """
    if not os.path.isfile(list_path):
        raise DataListError(f"{list_path}: no such score list")
    rows = []
    with open(list_path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip() or (skip_header and line_no == 1):
            continue
        fields = _split_fields(line)
        name = fields[0]
        sample_id = os.path.splitext(os.path.basename(name))[0]
        system = fields[2] if len(fields) > 2 and fields[2] else system_of(sample_id)
        rows.append(
            Row(
                sample_id=sample_id,
                system_id=system,
                wav_path=resolve_wav_path(name, wav_dir),
                score=fields[1] if len(fields) > 1 else None,
                origin=f"{list_path}:{line_no}",
            )
        )
    return rows


def looks_like_header(list_path: str) -> bool:
    """Whether the first line of a score list is a header: its score field is not a number and its
    first field is not an audio file name."""
    with open(list_path, encoding="utf-8") as handle:
        first = handle.readline().strip()
    fields = _split_fields(first) if first else []
    if len(fields) < 2:
        return False
    try:
        float(fields[1])
        return False
    except ValueError:
        return os.path.splitext(fields[0])[1].lower() not in AUDIO_EXTENSIONS


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")


def write_splits(splits: dict[str, tuple], out_dir: str, *, check_audio: bool = True) -> dict[str, list[Utterance]]:
    """Validate every split, then write ``out_dir/<split>.csv`` for each.

    ``splits`` maps an output split name to ``(rows, source)``. Nothing is written unless every split is
    valid; the error lists the bad rows of all splits at once.
    """
    validated, errors = {}, []
    for name, (rows, source) in splits.items():
        try:
            validated[name] = validate(rows, source, check_audio=check_audio)
        except DataListError as exc:
            errors.append(str(exc))
    if errors:
        raise DataListError("\n".join(errors))
    for name, utts in validated.items():
        write_datalist(os.path.join(out_dir, f"{name}.csv"), utts)
    return validated
