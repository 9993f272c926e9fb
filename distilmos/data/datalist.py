"""The data list CSV (``sample_id,system_id,wav_path,score``): reading, writing and preflight validation.

Every corpus reader (BVCC, SOMOS, a generic list) turns its own files into :class:`Row` objects and
passes them through :func:`validate`, so a bad corpus is reported the same way everywhere: one
:class:`DataListError` that lists every bad row with where it came from, before any long job starts.

Every list or CSV a user hands in (data lists, score lists, a corpus's score tables, pools) is opened
by :func:`open_list` alone: UTF-8 with or without a byte-order mark, and one error naming the file and
line of a byte that is not UTF-8.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from distilmos.errors import ToolkitError
from distilmos.fileio import atomic_write

from .audio import SAMPLE_RATE, AudioError, probe_audio, samples_at_16k

COLUMNS = ("sample_id", "system_id", "wav_path", "score")
#: the extra column of a listener list (:func:`listener_list_path`): who gave the row's rating
LISTENER_COLUMN = "listener_id"


class DataListError(ToolkitError, ValueError):
    """A data list (or the corpus files behind it) with problems; the message lists every bad row."""


class ListEncodingError(DataListError):
    """A list file that is not UTF-8 text; the message names the file and the line of the first bad byte."""


#: the scale of a MOS list: warned about when the bulk of a list's scores is on it and some are not
MOS_SCALE = (1.0, 5.0)
#: share of a list's scores that must lie on :data:`MOS_SCALE` for the list to be taken as a MOS list
MOS_BULK = 0.9
#: rows named in one warning
_WARN_ROWS = 10

#: the shortest clip when the upstream's own minimum is unknown: 400 samples at 16 kHz, the receptive field
#: of the wav2vec 2.0 / HuBERT / WavLM convolutional front end (one frame needs that many samples)
DEFAULT_MIN_SECONDS = 0.025


def open_list(path: str) -> io.StringIO:
    """A list file's text, ready for ``csv`` (line endings kept, as ``open(..., newline="")`` gives them).

    The one way the toolkit opens a data list or any other list or CSV a user hands in. UTF-8, with or
    without a byte-order mark (Excel's "CSV UTF-8" writes one); a byte that is not UTF-8 is a
    :class:`ListEncodingError` naming the file and the line it is on, a file that cannot be read a
    :class:`DataListError` naming it.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:  # missing, a folder, no permission
        raise DataListError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ListEncodingError(
            f"{path}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8 ({exc.reason}); save the file as UTF-8 "
            '(Excel: "CSV UTF-8"; iconv -f latin1 -t utf-8)'
        ) from None
    return io.StringIO(text, newline="")


def _encoding_error(path: str, data_lines: Iterable[bytes]) -> ListEncodingError | None:
    """The :class:`ListEncodingError` of the first line of ``data_lines`` (a file's bytes, split after each
    newline, byte-order mark removed) that is not UTF-8, or None."""
    for line_no, raw in enumerate(data_lines, start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return ListEncodingError(
                f"{path}:{line_no}: byte 0x{raw[exc.start]:02x} is not UTF-8 ({exc.reason}); save the file as UTF-8 "
                '(Excel: "CSV UTF-8"; iconv -f latin1 -t utf-8)'
            )
    return None


def iter_list_lines(path: str) -> Iterator[str]:
    """The lines of a list file, streamed (line endings kept, split as ``open(..., newline="")`` splits):
    :func:`open_list` for lists too long to hold in memory, with the same rules and the same errors."""
    try:
        handle = open(path, "rb")
    except OSError as exc:  # missing, a folder, no permission
        raise DataListError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        try:
            yield from text
        except UnicodeDecodeError:
            handle.seek(0)
            lines = iter(handle)
            first = next(lines, b"")
            error = _encoding_error(path, itertools.chain([first.removeprefix(codecs.BOM_UTF8)], lines))
            raise (error or ListEncodingError(f"{path}: not UTF-8 text")) from None
        except OSError as exc:
            raise DataListError(f"{path}: cannot read ({exc.strerror or exc})") from None


def too_short(num_samples: int, min_samples: int) -> str | None:
    """Why a clip of ``num_samples`` (16 kHz) is too short for an upstream that needs ``min_samples`` for one
    frame, or None when it is long enough."""
    if num_samples >= min_samples:
        return None
    return (
        f"too short: {num_samples} samples at 16 kHz ({1000 * num_samples / SAMPLE_RATE:.1f} ms), the upstream "
        f"needs at least {min_samples} ({1000 * min_samples / SAMPLE_RATE:.1f} ms) for one frame"
    )


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
    #: the listener ratings the score averages, as ``(listener_id, rating, origin)``, when the corpus names them
    listeners: list[tuple[str, str, str]] = field(default_factory=list)


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
    min_samples: int = 0,
    skipped: list[str] | None = None,
    unique: bool = True,
) -> list[Utterance]:
    """Check every row and return the utterances, or raise one :class:`DataListError` listing all problems.

    Checked: empty ``sample_id``, duplicate ``sample_id``, a score that is missing, non-numeric or not
    finite, and (with ``check_audio``) an audio file that is missing, unreadable, empty or truncated
    (header only, so this is cheap), or shorter than ``min_samples`` at 16 kHz (what the upstream needs
    for one frame). A too-short clip is a bad row, unless ``skipped`` is a list: then the row is left
    out and its message (row, file, reason) appended there.

    Scores off the 1-5 MOS scale are kept, with one warning naming them (see :func:`warn_off_scale`).
    """
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    utterances: list[Utterance] = []
    for row in rows:
        bad = []
        if not row.sample_id:
            bad.append("empty sample_id")
        elif unique and row.sample_id in first_seen:
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
        short = None
        if check_audio:
            try:
                info = probe_audio(row.wav_path)
                num_samples = samples_at_16k(info.frames, info.samplerate)
                short = too_short(num_samples, min_samples)
            except AudioError as exc:
                bad.append(str(exc))
        where = f"{row.origin} [{row.sample_id or '?'}]"
        if short and skipped is not None and not bad:
            skipped.append(f"{where}: {row.wav_path}: {short}")
            continue
        if short:
            bad.append(f"{row.wav_path}: {short}")
        if bad:
            problems.append(f"  {where}: " + "; ".join(bad))
        else:
            utterances.append(
                Utterance(row.sample_id, row.system_id, row.wav_path, score, dict(row.extra), num_samples, row.origin)
            )
    if problems:
        raise DataListError(f"{source}: {len(problems)} bad row(s):\n" + "\n".join(problems))
    if not utterances:
        left_out = f" ({len(skipped)} left out as too short)" if skipped else ""
        raise DataListError(f"{source}: no utterances{left_out}")
    warn_off_scale(utterances, source)
    return utterances


def off_scale(
    utterances: Sequence[Utterance], scale: tuple[float, float] = MOS_SCALE, bulk: float = MOS_BULK
) -> list[Utterance]:
    """The utterances whose score lies off ``scale``, when the list is on that scale: at least ``bulk`` of
    its scores lie on it. A list mostly off it (0-100 ratings, say) is on another scale, and none is named.

    The scale is inferred rather than configured: every corpus this toolkit reads is rated 1-5, and a
    list on another scale should neither be refused nor need an option.
    """
    scored = [u for u in utterances if math.isfinite(u.score)]
    off = [u for u in scored if not scale[0] <= u.score <= scale[1]]
    return off if off and len(scored) - len(off) >= bulk * len(scored) else []


def warn_off_scale(utterances: Sequence[Utterance], source: str) -> None:
    """One warning on stderr naming the rows of a MOS list whose scores lie off its 1-5 scale
    (:func:`off_scale`); they are kept (a typo, or a list on another scale: check them)."""
    off = off_scale(utterances)
    if not off:
        return
    rows = "\n".join(f"  {u.origin} [{u.sample_id}]: score {u.score:g}" for u in off[:_WARN_ROWS])
    more = f"\n  ... and {len(off) - _WARN_ROWS} more" if len(off) > _WARN_ROWS else ""
    print(
        f"warning: {source}: {len(off)} of {len(utterances)} scores lie off the {MOS_SCALE[0]:g}-{MOS_SCALE[1]:g} "
        f"MOS scale the others are on (kept as given; check them for typos):\n{rows}{more}",
        file=sys.stderr,
    )


def resolve_wav_path(wav_path: str, base_dir: str) -> str:
    """An absolute path for ``wav_path``, which may be relative to ``base_dir`` (the list's folder)."""
    wav_path = os.path.expanduser(wav_path)
    return os.path.normpath(wav_path if os.path.isabs(wav_path) else os.path.join(base_dir, wav_path))


def read_rows(csv_path: str) -> list[Row]:
    """Read a data list CSV into raw rows (no validation beyond the header)."""
    if not os.path.isfile(csv_path):
        raise DataListError(f"{csv_path}: no such data list")
    base_dir = os.path.dirname(os.path.abspath(csv_path))
    with open_list(csv_path) as handle:
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


def read_datalist(
    csv_path: str,
    *,
    check_audio: bool = True,
    require_score: bool = True,
    min_samples: int = 0,
    skipped: list[str] | None = None,
) -> list[Utterance]:
    """Read and validate a data list CSV; see :func:`validate` for what is checked."""
    return validate(
        read_rows(csv_path),
        csv_path,
        check_audio=check_audio,
        require_score=require_score,
        min_samples=min_samples,
        skipped=skipped,
    )


def write_datalist(csv_path: str, utterances: Sequence[Utterance]) -> None:
    """Write utterances as a data list CSV (atomically). Extra columns of the first row are kept."""
    extra_cols = list(utterances[0].extra) if utterances else []
    with atomic_write(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(list(COLUMNS) + extra_cols)
        for utt in utterances:
            writer.writerow(
                [utt.sample_id, utt.system_id, utt.wav_path, repr(float(utt.score))]
                + [utt.extra.get(c, "") for c in extra_cols]
            )


def listener_list_path(csv_path: str) -> str:
    """The listener list beside a data list: ``data/bvcc/train.csv`` -> ``data/bvcc/train_listeners.csv``.

    A listener list is a data list with one row per rating instead of per utterance (so a ``sample_id``
    recurs): ``sample_id,system_id,wav_path,score,listener_id``, ``score`` being that listener's rating.
    The corpus readers write one beside each split whose corpus names its listeners."""
    root, ext = os.path.splitext(csv_path)
    return f"{root}_listeners{ext or '.csv'}"


def read_listener_list(csv_path: str) -> list[Utterance]:
    """Read and validate a listener list (see :func:`listener_list_path`): every rating a finite number,
    every row a ``listener_id``. Audio is not checked here: the averaged list beside it names the same files."""
    rows = read_rows(csv_path)
    utts = validate(rows, csv_path, check_audio=False, unique=False)
    missing = [u.origin for u in utts if not (u.extra.get(LISTENER_COLUMN) or "").strip()]
    if missing:
        raise DataListError(
            f"{csv_path}: {len(missing)} row(s) without a {LISTENER_COLUMN} (first: {', '.join(missing[:5])}); a "
            f"listener list has the columns {','.join(COLUMNS)},{LISTENER_COLUMN}"
        )
    return utts


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
    return list(iter_score_list(list_path, wav_dir, system_of, skip_header=skip_header))


def iter_score_list(list_path: str, wav_dir: str, system_of, *, skip_header: bool = False) -> Iterator[Row]:
    """:func:`rows_from_score_list`, streamed: one :class:`Row` at a time, for lists of any length."""
    if not os.path.isfile(list_path):
        raise DataListError(f"{list_path}: no such score list")
    for line_no, line in enumerate(iter_list_lines(list_path), start=1):
        if not line.strip() or (skip_header and line_no == 1):
            continue
        fields = _split_fields(line)
        name = fields[0]
        sample_id = os.path.splitext(os.path.basename(name))[0]
        system = fields[2] if len(fields) > 2 and fields[2] else system_of(sample_id)
        yield Row(
            sample_id=sample_id,
            system_id=system,
            wav_path=resolve_wav_path(name, wav_dir),
            score=fields[1] if len(fields) > 1 else None,
            origin=f"{list_path}:{line_no}",
        )


def looks_like_header(list_path: str) -> bool:
    """Whether the first line of a score list is a header: its score field is not a number and its
    first field is not an audio file name."""
    with contextlib.closing(iter_list_lines(list_path)) as lines:
        first = next(lines, "").strip()
    fields = _split_fields(first) if first else []
    if len(fields) < 2:
        return False
    try:
        float(fields[1])
        return False
    except ValueError:
        return os.path.splitext(fields[0])[1].lower() not in AUDIO_EXTENSIONS


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")
