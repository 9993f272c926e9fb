"""What every corpus reader shares: finding the corpus's files, reading its score tables, averaging
listener ratings, a seeded held-out split, and writing the validated data lists with a stamp.

A reader whose corpus names the listener of each rating attaches them to its rows (``Row.listeners``, from
:func:`listener_ratings`); :func:`write_splits` then writes, beside each averaged ``<split>.csv``, the
listener list ``<split>_listeners.csv`` (one row per rating, see
:func:`distilmos.data.datalist.listener_list_path`). A split without listener ratings gets none.

A reader (one small module per corpus) only knows its corpus's layout: it turns the files as the corpus
ships them into :class:`~distilmos.data.datalist.Row` objects per split. Everything else (validation with
one error listing every bad row, audio header checks, atomic CSV writing, skipping a preparation that
is already done) happens here, the same way for every corpus.

Audio is never converted here: the data lists point at the corpus's own files, at whatever sample rate
they have, and every reader of audio in the toolkit downmixes and resamples to 16 kHz when it loads
(:func:`distilmos.data.audio.load_audio`).
"""

from __future__ import annotations

import csv
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from distilmos.data.datalist import (
    AUDIO_EXTENSIONS,
    LISTENER_COLUMN,
    DataListError,
    Row,
    Utterance,
    listener_list_path,
    open_list,
    validate,
    write_datalist,
)
from distilmos.fileio import atomic_write, unwritable

#: ``{split: (rows, source)}``: what a reader returns; ``source`` names the score file(s) in errors
Splits = dict[str, tuple[list[Row], str]]

STAMP = ".prepared"
HOLDOUT_SEED = 1337  # the seed SHEET's recipes use for their random dev sets
HOLDOUT_RATIO = 0.1


class CorpusLayoutError(DataListError):
    """A corpus folder that does not have the layout its reader expects; the message names the missing
    file or folder and what the root should hold."""


@dataclass(frozen=True)
class Option:
    """A keyword argument of a reader's ``read`` (a reader lists them in ``OPTIONS``), which the preparation
    command offers as ``--<name>``: its type is its default's (a ``False`` default makes a flag)."""

    name: str
    default: bool | int | str
    help: str
    choices: tuple[str, ...] | None = None


def require(path: str, hint: str) -> str:
    """``path`` if it exists, else a :class:`CorpusLayoutError` naming it (``hint`` says what the root
    should hold)."""
    if not os.path.exists(path):
        raise CorpusLayoutError(f"{path}: not found; {hint}")
    return path


def first_dir(root: str, candidates: Sequence[str], hint: str) -> str:
    """The first of the folders ``candidates`` (names a corpus's audio goes by in different copies) that
    ``root`` holds, else a :class:`CorpusLayoutError` naming them (``hint`` says what the root should hold)."""
    for name in candidates:
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    others = ", ".join(f"{c}/" for c in candidates[1:])
    raise CorpusLayoutError(
        f"{os.path.join(root, candidates[0])}: not found" + (f" (nor {others})" if others else "") + f"; {hint}"
    )


def audio_file(folder: str, name: str) -> str:
    """The absolute path of ``name`` in ``folder``; ``.wav`` is added to a name without an audio
    extension (several corpora list utterance ids rather than file names)."""
    if os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
        name += ".wav"
    return os.path.normpath(os.path.join(folder, name))


def stem(name: str) -> str:
    """``dir/x.wav`` -> ``x``; a name without an audio extension is kept whole (ids may hold dots)."""
    base = os.path.basename(name)
    root, ext = os.path.splitext(base)
    return root if ext.lower() in AUDIO_EXTENSIONS else base


def read_table(path: str, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with a header, as ``(line number, {column: value})``; a missing file or a
    header without one of ``columns`` is an error naming the file."""
    if not os.path.isfile(path):
        raise CorpusLayoutError(f"{path}: no such score file")
    with open_list(path) as handle:  # some corpora ship a byte-order mark
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise CorpusLayoutError(f"{path}: header {header} lacks column(s) {missing}")
        reader.fieldnames = header
        return [
            (reader.line_num, {k: (v or "").strip() for k, v in record.items() if k is not None}) for record in reader
        ]


def read_lines(path: str) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a headerless comma-separated file as ``(line number, fields)``."""
    if not os.path.isfile(path):
        raise CorpusLayoutError(f"{path}: no such score file")
    with open_list(path) as handle:
        return [
            (n, [f.strip() for f in fields])
            for n, fields in enumerate(csv.reader(handle), start=1)
            if any(f.strip() for f in fields)
        ]


def file_row(wav_dir: str, name: str, score: str | None, system_of: Callable[[str], str], origin: str) -> Row:
    """The row of audio file ``name`` (a file name or an utterance id, ``.wav`` added) in ``wav_dir``: its
    sample id is the stem, its system ``system_of(sample id)``."""
    sample_id = stem(name)
    return Row(sample_id, system_of(sample_id), audio_file(wav_dir, name), score, origin)


def score_list(path: str, wav_dir: str, system_of: Callable[[str], str]) -> list[Row]:
    """A ``name,score`` list (VoiceMOS style: BVCC, SingMOS, the VMC'23 answers); ``name`` is a file
    name or an utterance id (``.wav`` added) in ``wav_dir``."""
    return [
        file_row(wav_dir, fields[0], fields[1] if len(fields) > 1 else None, system_of, f"{path}:{line_no}")
        for line_no, fields in read_lines(path)
    ]


def score_table(
    path: str, wav_dir: str, file_column: str, score_column: str, system_of: Callable[[str], str] = str
) -> list[Row]:
    """A score file with a header, one row per utterance: ``file_column`` names its audio file (or utterance
    id, ``.wav`` added) in ``wav_dir``, ``score_column`` its MOS; the system is ``system_of(sample id)``
    (by default each file is its own)."""
    return [
        file_row(wav_dir, record[file_column], record[score_column], system_of, f"{path}:{line_no}")
        for line_no, record in read_table(path, (file_column, score_column))
    ]


def average_ratings(ratings: Iterable[tuple[str, str, str]]) -> OrderedDict[str, tuple[str | None, int, str]]:
    """Per key (an utterance), the mean of its listener ratings, as ``{key: (mean, n, first origin)}``
    in order of first appearance. ``ratings`` yields ``(key, rating, origin)``; a rating that is not a
    number makes the mean its raw text, so that validation reports the row it came from."""
    values: OrderedDict[str, list] = OrderedDict()
    for key, rating, origin in ratings:
        entry = values.setdefault(key, [[], origin, None])
        try:
            entry[0].append(float(rating))
        except ValueError:
            entry[2] = entry[2] or f"{rating!r} ({origin})"
    out = OrderedDict()
    for key, (scores, origin, bad) in values.items():
        mean = bad if bad is not None else repr(float(np.mean(scores)))
        out[key] = (mean, len(scores), origin)
    return out


def listener_ratings(ratings: Iterable[tuple[str, str, str, str]]) -> dict[str, list[tuple[str, str, str]]]:
    """Per key (an utterance), its ratings with their listeners, as ``{key: [(listener_id, rating, origin)]}``
    in the order read; ``ratings`` yields ``(key, listener_id, rating, origin)``. Attach them to the key's
    row (``Row.listeners``) so that :func:`write_splits` writes the listener list."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for key, listener, rating, origin in ratings:
        out.setdefault(key, []).append((listener.strip(), rating, origin))
    return out


def holdout(ids: Sequence[str], ratio: float = HOLDOUT_RATIO, seed: int = HOLDOUT_SEED) -> set:
    """A seeded random ``ratio`` of ``ids`` (at least one when there are two or more), for corpora
    that ship no validation set. It depends only on the set of ids, not on their order on disk."""
    ordered = sorted(set(ids))
    count = int(len(ordered) * ratio)
    if count == 0 and len(ordered) >= 2:
        count = 1
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i] for i in order[:count]}


def resplit(splits: Splits, fractions: dict[str, float], seed: int, how: str) -> Splits:
    """Every row of ``splits`` pooled and dealt at random into new splits of the given ``fractions`` (in their
    order; each split but the first gets ``int(n * fraction)`` rows, the first the rest). The deal depends only
    on the set of sample ids and ``seed`` (ids are sorted before a seeded permutation), and each new split keeps
    the pool's order, so the same corpus and seed give the same lists byte for byte. Each row records its
    original split in the extra column ``original_split``; ``how`` describes the deal in error messages."""
    pool = [(name, row) for name, (rows, _) in splits.items() for row in rows]
    ids = sorted({row.sample_id for _, row in pool})
    order = np.random.default_rng(seed).permutation(len(ids))
    names = list(fractions)
    counts = [int(len(ids) * fractions[name]) for name in names[1:]]
    assigned, start = {}, len(ids) - sum(counts)
    for i in order[:start]:
        assigned[ids[i]] = names[0]
    for name, count in zip(names[1:], counts):
        for i in order[start : start + count]:
            assigned[ids[i]] = name
        start += count
    source = f"{', '.join(source for _, source in splits.values())} ({how})"
    out: Splits = {name: ([], source) for name in names}
    for original, row in pool:
        row.extra["original_split"] = original
        out[assigned[row.sample_id]][0].append(row)
    return out


def split_by(rows: list[Row], held: set) -> tuple[list[Row], list[Row]]:
    """``(rows not held out, rows held out)`` by sample id, order kept."""
    return [r for r in rows if r.sample_id not in held], [r for r in rows if r.sample_id in held]


# ---- writing --------------------------------------------------------------------------------------


def _progress(rows: list[Row], desc: str, enabled: bool):
    if not enabled or len(rows) < 200:  # a bar for a few files is noise
        return rows
    from tqdm import tqdm

    return tqdm(rows, desc=desc, unit="file", leave=False)


def write_splits(
    splits: Splits, out_dir: str, *, check_audio: bool = True, progress: bool = True
) -> dict[str, list[Utterance]]:
    """Validate every split (audio headers too, with a progress bar on large corpora), then write
    ``out_dir/<split>.csv`` for each, and ``out_dir/<split>_listeners.csv`` for each split whose rows carry
    listener ratings (a stale one of an earlier preparation is removed). Nothing is written unless every
    split is valid; the error lists the bad rows of all splits."""
    problem = unwritable(out_dir)
    if problem:  # before the header checks, which can take minutes on a large corpus
        raise DataListError(f"{out_dir}: cannot write the data lists there ({problem}); give another --out_dir")
    validated, ratings, errors = {}, {}, []
    for name, (rows, source) in splits.items():
        try:
            validated[name] = validate(
                _progress(rows, f"checking {name}", progress and check_audio), source, check_audio=check_audio
            )
            if any(row.listeners for row in rows):
                ratings[name] = validate(
                    _rating_rows(rows), f"{source} (listener ratings)", check_audio=False, unique=False
                )
        except DataListError as exc:
            errors.append(str(exc))
    if errors:
        raise DataListError("\n".join(errors))
    for name, utts in validated.items():
        path = os.path.join(out_dir, f"{name}.csv")
        write_datalist(path, utts)
        if name in ratings:
            write_datalist(listener_list_path(path), ratings[name])
        elif os.path.exists(listener_list_path(path)):
            os.remove(listener_list_path(path))
    return validated


def _rating_rows(rows: list[Row]) -> list[Row]:
    """One row per listener rating of ``rows`` (the listener in the extra column ``listener_id``)."""
    return [
        Row(row.sample_id, row.system_id, row.wav_path, rating, origin, {LISTENER_COLUMN: listener})
        for row in rows
        for listener, rating, origin in row.listeners
    ]


def stamp_text(corpus: str, root: str, options: dict | None = None) -> str:
    """What a preparation is of: the corpus, its root and the reader's options (none for most readers)."""
    what = {"corpus": corpus, "root": os.path.abspath(root)}
    if options:  # only readers that take options record them: the stamps of the others read as before
        what["options"] = options
    return json.dumps(what, sort_keys=True)


def is_prepared(corpus: str, root: str, out_dir: str, options: dict | None = None) -> list[str] | None:
    """The split names of a finished preparation of ``root`` (with the reader's ``options``) into ``out_dir``,
    or None when it must be (re)done: no stamp, a stamp of another corpus, root or options, or a data list that
    is gone."""
    path = os.path.join(out_dir, STAMP)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    if not lines or lines[0] != stamp_text(corpus, root, options):
        return None
    splits = lines[1:]
    if not splits or not all(os.path.isfile(os.path.join(out_dir, f"{s}.csv")) for s in splits):
        return None
    return splits


def write_stamp(corpus: str, root: str, out_dir: str, splits: Sequence[str], options: dict | None = None) -> None:
    """Record that ``out_dir`` holds the data lists of ``root``: first line the corpus, root and reader options,
    then one split name a line. Written last, so a killed preparation is redone."""
    with atomic_write(os.path.join(out_dir, STAMP), "w", encoding="utf-8") as handle:
        handle.write("\n".join([stamp_text(corpus, root, options), *splits]) + "\n")
