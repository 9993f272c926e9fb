"""The MOS-Bench test sets of a roots file: every corpus it names that is present, prepared, and a manifest.

A roots file is YAML mapping corpus names to their folders (``egs/mosbench/conf/roots.example.yaml``);
:func:`prepare_sets` prepares each corpus present with its reader (stamped: a corpus prepared before from
the same root is kept) and writes the manifest of test sets that ``egs/mosbench`` scores and that
``egs/compress`` evaluates out of domain: ``{"roots", "sets": [{name, key, corpus, split, csv}], "skipped":
[{corpus, reason}]}``. ``distilmos-prep --roots R --out_dir D --manifest M`` runs it.
"""

from __future__ import annotations

import json
import os
import sys

import yaml

from distilmos.errors import ToolkitError
from distilmos.fileio import atomic_write

from . import CORPORA, corpus, prepare


class RootsError(ToolkitError, ValueError):
    """A roots file that cannot be used, or one naming no corpus present; the message names it."""


def read_roots(path: str) -> dict[str, str | None]:
    """``{corpus: root or None}`` from a YAML mapping; relative roots are taken from the file's folder."""
    if not os.path.isfile(path):
        raise RootsError(
            f"{path}: no such roots file; write one mapping corpus names to their folders "
            f"(see egs/mosbench/conf/roots.example.yaml); corpora: {', '.join(CORPORA)}"
        )
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise RootsError(f"{path}: expected a mapping 'corpus: folder', got {type(data).__name__}")
    roots = {}
    for key, value in data.items():
        name = corpus(str(key)).name  # an unknown name is an error listing the known ones
        if value in (None, ""):
            roots[name] = None
        else:
            value = os.path.expanduser(str(value))
            roots[name] = value if os.path.isabs(value) else os.path.join(os.path.dirname(os.path.abspath(path)), value)
    return roots


def prepare_sets(roots_path: str, datadir: str, manifest: str, only: list[str] | None = None) -> dict:
    """Prepare every corpus of the roots file that is present (stamped: a done one is kept) and write the
    manifest: the test sets to score and the corpora skipped, with why."""
    roots = read_roots(roots_path)
    names = [corpus(n).name for n in only] if only else list(CORPORA)
    sets, skipped = [], []
    for name in names:
        spec = CORPORA[name]
        root = roots.get(name)
        if not spec.test_splits:  # a training set of the benchmark (URGENT 2024 MOS): nothing to score
            skipped.append({"corpus": name, "reason": "a training set: it ships no test split"})
            continue
        if name not in roots:
            skipped.append({"corpus": name, "reason": f"not in {os.path.basename(roots_path)}"})
            continue
        if root is None or not os.path.isdir(root):
            skipped.append({"corpus": name, "reason": "no root given" if root is None else f"{root} not found"})
            continue
        out_dir = os.path.join(datadir, name)
        counts = prepare(name, root, out_dir)
        state = "kept (prepared before)" if all(v is None for v in counts.values()) else "prepared"
        print(f"{name}: {state} -> {out_dir} ({', '.join(counts)})", file=sys.stderr)
        for split in spec.test_splits:
            if split in counts:
                sets.append(
                    {
                        "name": f"{name}/{split}",
                        "key": f"{name}_{split}",
                        "corpus": name,
                        "split": split,
                        "csv": os.path.abspath(os.path.join(out_dir, f"{split}.csv")),
                    }
                )
            else:
                skipped.append({"corpus": f"{name}/{split}", "reason": "split not in this copy of the corpus"})
    result = {"roots": os.path.abspath(roots_path), "sets": sets, "skipped": skipped}
    with atomic_write(manifest) as handle:
        json.dump(result, handle, indent=1)
    for entry in skipped:
        print(f"skipped: {entry['corpus']} ({entry['reason']})", file=sys.stderr)
    if not sets:
        raise RootsError(f"{roots_path}: none of its corpora is present; nothing to evaluate")
    return result
