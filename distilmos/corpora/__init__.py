"""MOS corpora: one small reader per corpus, one registry, one preparation routine.

Each reader knows only its corpus's layout as distributed (file names, score files, splits, system
ids) and returns raw rows per split; :func:`prepare` validates them (one error listing every bad row:
missing audio, a score that is not a number, duplicate ids), writes ``<out_dir>/<split>.csv`` in the
toolkit's data list format and stamps the folder, so that preparing the same root again is skipped.
Corpora that name the listener of each rating (``--list`` marks them ``[listeners]``: bvcc, bc19, vcc2018,
svcc23 from its listener-wise answers, ttsds2) also get ``<out_dir>/<split>_listeners.csv``, one row per
rating (``sample_id,system_id,wav_path,score,listener_id``) for listener-aware training; the others (their
files hold averaged scores only, or ratings without listener ids) get none.

    python -m distilmos.corpora --list                                   # corpora, splits, root layouts
    python -m distilmos.corpora nisqa --root /corpora/NISQA_Corpus --out_dir data/nisqa
    python egs/nisqa/local/data_prep.py --nisqa_root /corpora/NISQA_Corpus --out_dir data/nisqa   # the same

Layer: imports the foundation, :mod:`distilmos.data`, :mod:`distilmos.eval` and :mod:`distilmos.models`;
never its siblings :mod:`distilmos.upstream` and :mod:`distilmos.standins`, nor anything above them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from distilmos.data.datalist import listener_list_path
from distilmos.errors import reports_errors

from . import (
    bc19,
    bc23,
    bvcc,
    nisqa,
    pstn,
    singmos,
    somos,
    svcc23,
    tcd_voip,
    tencent,
    tmhint_qi,
    ttsds2,
    urgent2024_mos,
    vcc2018,
    vmc23,
)
from .common import CorpusLayoutError, Option, Splits, is_prepared, write_splits, write_stamp

__all__ = ["CORPORA", "Corpus", "CorpusLayoutError", "corpus", "prepare", "main"]


@dataclass(frozen=True)
class Corpus:
    """A registered corpus: its reader and what it yields."""

    name: str
    read: Callable[[str], Splits]  # root -> {split: (rows, source)}
    splits: tuple[str, ...]  # every split it can yield (some only when the copy has them)
    test_splits: tuple[str, ...]  # the splits a benchmark evaluates on (none for a training set)
    layout: str  # what the root holds, one line
    doc: str  # the reader's docstring: the layout in full, and what is unsure
    listeners: bool = False  # it names each rating's listener: <split>_listeners.csv is written too
    options: tuple[Option, ...] = ()  # keyword arguments of read (--<name> of the preparation command)

    def reader_options(self, given: dict | None = None) -> dict:
        """The keyword arguments of :attr:`read`: ``given`` over the defaults; an option the reader does not
        take is an error naming the ones it does."""
        given = given or {}
        unknown = sorted(set(given) - {o.name for o in self.options})
        if unknown:
            takes = ", ".join(o.name for o in self.options) or "none"
            raise CorpusLayoutError(f"{self.name} takes no option {', '.join(unknown)} (its options: {takes})")
        return {o.name: given.get(o.name, o.default) for o in self.options}


def _register(module) -> Corpus:
    return Corpus(
        module.NAME,
        module.read,
        tuple(module.SPLITS),
        tuple(module.TEST_SPLITS),
        module.LAYOUT,
        module.__doc__ or "",
        bool(getattr(module, "LISTENERS", False)),
        tuple(getattr(module, "OPTIONS", ())),
    )


#: name -> corpus, in the order of benchmark tables
CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in map(
        _register,
        (
            bvcc,
            somos,
            singmos,
            nisqa,
            tmhint_qi,
            tencent,
            pstn,
            urgent2024_mos,
            vmc23,
            bc19,
            vcc2018,
            bc23,
            svcc23,
            tcd_voip,
            ttsds2,
        ),
    )
}


def corpus(name: str) -> Corpus:
    """The registered corpus ``name`` (``tmhint-qi`` and ``tmhint_qi`` alike), or an error listing them."""
    key = name.strip().lower().replace("-", "_")
    if key not in CORPORA:
        raise CorpusLayoutError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    return CORPORA[key]


def prepare(
    name: str,
    root: str,
    out_dir: str,
    *,
    options: dict | None = None,
    check_audio: bool = True,
    force: bool = False,
    progress: bool = True,
) -> dict[str, int | None]:
    """Write the data lists of corpus ``name`` found at ``root`` into ``out_dir``, reading it with the reader's
    ``options`` (``{"split": "random811"}`` for BVCC, say; the others at their defaults); return ``{split:
    number of utterances}`` (``None`` for each split when a finished preparation of the same root and options
    was found and kept; ``force`` redoes it)."""
    spec = corpus(name)
    options = spec.reader_options(options)
    if not os.path.isdir(root):
        raise CorpusLayoutError(f"{root}: no such folder (the {spec.name} root should hold {spec.layout})")
    root = os.path.abspath(root)
    done = None if force else is_prepared(spec.name, root, out_dir, options)
    if done is not None:
        return {split: None for split in done}
    splits = spec.read(root, **options)
    empty = [s for s, (rows, _) in splits.items() if not rows]
    if empty:
        raise CorpusLayoutError(
            f"{spec.name} at {root}: split(s) {', '.join(empty)} have no utterances "
            f"(from {', '.join(splits[s][1] for s in empty)})"
        )
    written = write_splits(splits, out_dir, check_audio=check_audio, progress=progress)
    write_stamp(spec.name, root, out_dir, list(written), options)
    return {split: len(utts) for split, utts in written.items()}


def describe() -> str:
    """One line per corpus: name, splits (test splits starred; a training set says it has none), root layout."""
    lines = []
    for c in CORPORA.values():
        splits = " ".join(s + ("*" if s in c.test_splits else "") for s in c.splits) + (
            "" if c.test_splits else " (no test set)"
        )
        lines.append(f"{c.name:14s} {splits:70s} {c.layout}" + (" [listeners]" if c.listeners else ""))
    return "\n".join(lines)


def _argument(option: Option) -> dict:
    """argparse keywords of ``--<option>``; left out, it is None and the reader's default applies."""
    if isinstance(option.default, bool):
        return {"action": "store_true", "help": option.help}
    return {
        "type": type(option.default),
        "choices": option.choices,
        "help": f"{option.help} (default: {option.default})",
    }


def _parser(fixed: Corpus | None, argv: list[str] | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"egs/{fixed.name}/local/data_prep.py" if fixed else "python -m distilmos.corpora",
        description=(fixed.doc if fixed else __doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if fixed:
        parser.add_argument(f"--{fixed.name}_root", dest="root", required=True, help=f"folder holding {fixed.layout}")
    else:
        parser.add_argument("corpus", nargs="?", help=f"one of {', '.join(CORPORA)}")
        parser.add_argument("--root", help="the corpus folder")
        parser.add_argument("--list", action="store_true", help="print the corpora, their splits and root layouts")
        parser.add_argument(
            "--roots", help="a YAML roots file (corpus: folder): prepare every corpus present under --out_dir/<corpus>"
        )
        parser.add_argument("--manifest", help="--roots: the manifest of test sets (default: <out_dir>/sets.json)")
        parser.add_argument("--corpora", nargs="*", help="--roots: only these corpora (default: every registered one)")
    parser.add_argument(
        "--out_dir", required=not bool(fixed) and "--list" not in (argv or sys.argv[1:]), help="folder for <split>.csv"
    )
    parser.add_argument("--no_check_audio", action="store_true", help="skip opening every audio header")
    parser.add_argument("--force", action="store_true", help="prepare again even when the stamp says done")
    for spec in [fixed] if fixed else CORPORA.values():
        if spec.options:
            group = parser.add_argument_group(f"options of the {spec.name} reader")
            for option in spec.options:
                group.add_argument(f"--{option.name}", default=None, **_argument(option))
    return parser


def _prepare_roots(args: argparse.Namespace) -> list[str]:
    from .benchmark_sets import prepare_sets  # it imports this module

    manifest = args.manifest or os.path.join(args.out_dir, "sets.json")
    result = prepare_sets(args.roots, args.out_dir, manifest, args.corpora)
    return [f"{manifest}: {len(result['sets'])} test sets"]


def _prepare_one(spec: Corpus, args: argparse.Namespace, options: dict) -> list[str]:
    counts = prepare(
        spec.name, args.root, args.out_dir, options=options, check_audio=not args.no_check_audio, force=args.force
    )
    lines = []
    for split, count in counts.items():
        path = os.path.join(args.out_dir, f"{split}.csv")
        lines.append(f"{path}: " + ("already prepared from this root" if count is None else f"{count} utterances"))
        if os.path.isfile(listener_list_path(path)):
            lines.append(f"{listener_list_path(path)}: listener ratings")
    return lines


@reports_errors
def main(argv: list[str] | None = None, name: str | None = None) -> int:
    """The data preparation command; ``name`` fixes the corpus (``egs/<corpus>/local/data_prep.py``,
    which takes ``--<corpus>_root``). A reader's options are flags of their own (``--split random811`` for
    BVCC), listed by ``--help``. Exit status 0, or 2 with one error message (bad input: a
    root, a corpus name, a reader option, a score file or an output folder)."""
    fixed = corpus(name) if name else None
    parser = _parser(fixed, argv)
    args = parser.parse_args(argv)
    if not fixed and args.list:
        print(describe())
        return 0
    values = vars(args)
    offered = [fixed] if fixed else CORPORA.values()
    options = {o.name: values[o.name] for spec in offered for o in spec.options if values[o.name] is not None}
    batch = not fixed and bool(args.roots)
    if batch and options:
        parser.error(f"--{next(iter(options))} is an option of one corpus's reader: it does not go with --roots")
    if not fixed and not batch and not (args.corpus and args.root):
        parser.error("give a corpus name and --root (or --roots, or --list)")
    lines = _prepare_roots(args) if batch else _prepare_one(fixed or corpus(args.corpus), args, options)
    for line in lines:
        print(line)
    return 0
