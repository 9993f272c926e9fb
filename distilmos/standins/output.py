"""Where the generators write: a folder they may fill, never one holding files they did not write."""

from __future__ import annotations

import os

from distilmos.errors import ToolkitError
from distilmos.fileio import unwritable


class OutputFolderError(ToolkitError, FileExistsError):
    """An output folder a generator must not write into; the message names it and the fix."""


def check_out_dir(out_dir: str | os.PathLike, ours: list[str | os.PathLike]) -> None:
    """Refuse ``out_dir`` before any work when it cannot be written, or when one of ``ours`` (the folders
    the generator is about to write into) already holds files."""
    why = unwritable(out_dir)
    if why:
        raise OutputFolderError(f"{out_dir}: cannot write there ({why}); choose another --out_dir")
    for path in ours:
        if os.path.isdir(path) and os.listdir(path):
            raise OutputFolderError(
                f"{path} already holds files that this generator will not overwrite; choose another --out_dir"
            )
