"""What every corpus reader shares: finding the corpus's files, reading its score tables, averaging
listener ratings, a seeded held-out split, and writing the validated data lists with a stamp.

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

import numpy as np

from distilmos.data.datalist import AUDIO_EXTENSIONS, DataListError, Row, Utterance, open_list, validate, write_datalist
from distilmos.fileio import atomic_write, unwritable

#: ``{split: (rows, source)}``: what a reader returns; ``source`` names the score file(s) in errors
Splits = dict[str, tuple[list[Row], str]]

STAMP = ".prepared"
HOLDOUT_SEED = 1337  # the seed SHEET's recipes use for their random dev sets
HOLDOUT_RATIO = 0.1


class CorpusLayoutError(DataListError):
    """A corpus folder that does not have the layout its reader expects; the message names the missing
    file or folder and what the root should hold."""


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


def score_list(path: str, wav_dir: str, system_of: Callable[[str], str]) -> list[Row]:
    """A ``name,score`` list (VoiceMOS style: BVCC, SingMOS, the VMC'23 answers); ``name`` is a file
    name or an utterance id (``.wav`` added) in ``wav_dir``."""
    rows = []
    for line_no, fields in read_lines(path):
        name = fields[0]
        sample_id = stem(name)
        rows.append(
            Row(
                sample_id,
                system_of(sample_id),
                audio_file(wav_dir, name),
                fields[1] if len(fields) > 1 else None,
                f"{path}:{line_no}",
            )
        )
    return rows


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
    ``out_dir/<split>.csv`` for each. Nothing is written unless every split is valid; the error lists
    the bad rows of all splits."""
    problem = unwritable(out_dir)
    if problem:  # before the header checks, which can take minutes on a large corpus
        raise DataListError(f"{out_dir}: cannot write the data lists there ({problem}); give another --out_dir")
    validated, errors = {}, []
    for name, (rows, source) in splits.items():
        try:
            validated[name] = validate(
                _progress(rows, f"checking {name}", progress and check_audio), source, check_audio=check_audio
            )
        except DataListError as exc:
            errors.append(str(exc))
    if errors:
        raise DataListError("\n".join(errors))
    for name, utts in validated.items():
        write_datalist(os.path.join(out_dir, f"{name}.csv"), utts)
    return validated


def stamp_text(corpus: str, root: str) -> str:
    return json.dumps({"corpus": corpus, "root": os.path.abspath(root)}, sort_keys=True)


def is_prepared(corpus: str, root: str, out_dir: str) -> list[str] | None:
    """The split names of a finished preparation of ``root`` into ``out_dir``, or None when it must be
    (re)done: no stamp, a stamp of another corpus or root, or a data list that is gone."""
    path = os.path.join(out_dir, STAMP)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    if not lines or lines[0] != stamp_text(corpus, root):
        return None
    splits = lines[1:]
    if not splits or not all(os.path.isfile(os.path.join(out_dir, f"{s}.csv")) for s in splits):
        return None
    return splits


def write_stamp(corpus: str, root: str, out_dir: str, splits: Sequence[str]) -> None:
    """Record that ``out_dir`` holds the data lists of ``root``: first line the corpus and root, then
    one split name a line. Written last, so a killed preparation is redone."""
    with atomic_write(os.path.join(out_dir, STAMP), "w", encoding="utf-8") as handle:
        handle.write("\n".join([stamp_text(corpus, root), *splits]) + "\n")
