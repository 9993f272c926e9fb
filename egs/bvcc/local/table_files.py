"""What this recipe's table scripts share (make_table.py, moe_ablation.py, salf_ablation.py): reading a run's
files, and writing a table as Markdown and CSV."""

from __future__ import annotations

import csv
import json
import os

from distilmos.errors import ToolkitError
from distilmos.fileio import atomic_write


class AblationError(ToolkitError, ValueError):
    """A run that cannot be read; the message names it."""


def read_json(path: str) -> dict:
    """A run's JSON file (its metrics, its info), or an error saying the run is not finished."""
    if not os.path.isfile(path):
        raise AblationError(f"{path}: missing (has the run been trained and evaluated?)")
    with open(path) as handle:
        return json.load(handle)


def write_table(out: str, text: str, rows: list[dict], fields: list[str]) -> None:
    """``<out>.md`` (the Markdown ``text``) and ``<out>.csv`` (``rows``, columns ``fields``), each written whole
    or not at all, in a folder made if missing."""
    with atomic_write(out + ".md", encoding="utf-8") as handle:
        handle.write(text)
    with atomic_write(out + ".csv", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")  # not CRLF: cut/awk read it
        writer.writeheader()
        writer.writerows(rows)


def write_and_print_table(out: str, text: str, rows: list[dict], empty_column: str) -> None:
    """:func:`write_table` with the first row's columns (``empty_column`` alone for a table without rows), then
    the Markdown ``text`` and the two files' names on stdout."""
    write_table(out, text, rows, list(rows[0]) if rows else [empty_column])
    print(text)
    print(f"written: {out}.md {out}.csv")
