"""The token store's writers: atomic JSON and ``.npy`` writes, memory-mapped split arrays filled in any
order, the summary under a lock, removing a split. What a dump or a fit writes is read by
:mod:`distilmos.data.stores` (the format, :class:`TokenStore`, :class:`FrameStore` and their errors), which
this module re-exports, so ``from upstream_tokens.store import TokenStore`` keeps working.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from distilmos.data.audio import SAMPLE_RATE
from distilmos.data.stores import FORMAT_VERSION, SUMMARY, TokenStore, TokenStoreError, read_json, split_paths
from distilmos.fileio import atomic_write, sha256_file

__all__ = [
    # the reader, re-exported here where it lived before it moved down into the package (public names)
    "TokenStore",
    "TokenStoreError",
    # the writers
    "library_versions",
    "npy_writer",
    "upstream_meta",
    "remove_split",
    "token_dtype",
    "update_summary",
    "write_json",
    "write_npy",
]


def token_dtype(n_clusters: int) -> np.dtype:
    """The smallest signed integer type holding token ids ``0 .. n_clusters-1`` (int16 for k <= 32767)."""
    return np.dtype(np.int16) if n_clusters <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries whose behaviour shapes the tokens."""
    from importlib import metadata

    import sklearn

    def dist(*names):
        for name in names:
            try:
                return f"{name} {metadata.version(name)}"
            except metadata.PackageNotFoundError:
                continue
        return None

    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "s3prl": dist("espnet-s3prl", "s3prl"),
    }


def upstream_meta(upstream: str, ckpt: str | None, extractor) -> dict:
    """The meta every store of this tool starts with: the format, the upstream (name, checkpoint and its
    sha256) and what it gives (a :class:`~upstream_tokens.extract.FeatureExtractor`'s layers, dims, frame
    law, padding-exact forward), and the versions of the libraries that shape the rows."""
    return {
        "format_version": FORMAT_VERSION,
        "upstream": upstream,
        "upstream_ckpt": ckpt,
        "upstream_ckpt_sha256": sha256_file(ckpt) if ckpt and os.path.isfile(ckpt) else None,
        "layers": list(extractor.layers),
        "n_layers_upstream": extractor.n_layers_upstream,
        "feature_dim": extractor.feature_dim,
        "downsample_rate": extractor.downsample_rate,
        "frame_law": {"rate": extractor.frame_law.rate, "offset": extractor.frame_law.offset},
        "sample_rate": SAMPLE_RATE,
        "padding_exact": extractor.padding_exact,
        "versions": library_versions(),
    }


def write_json(path: str, obj, indent: int | None = 1) -> None:
    """Write JSON atomically, with sorted keys so that equal content gives equal bytes."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=indent, sort_keys=True)
        handle.write("\n")


def write_npy(path: str, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_write(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array))


@contextlib.contextmanager
def npy_writer(path: str, dtype, shape: Sequence[int]) -> Iterator[np.ndarray]:
    """Yield a writable memory map of a new ``.npy`` file; it replaces ``path`` atomically on success.

    Lets a split array be filled in any order without holding it in memory.
    """
    dtype, shape = np.dtype(dtype), tuple(int(s) for s in shape)
    with atomic_write(path, "w+b") as handle:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        offset = handle.tell()
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        handle.truncate(offset + nbytes)
        handle.flush()
        if nbytes == 0:  # mmap cannot map zero bytes
            yield np.empty(shape, dtype)
            return
        mapped = np.memmap(handle, dtype=dtype, mode="r+", offset=offset, shape=shape)
        yield mapped
        mapped.flush()
        del mapped


def update_summary(store_dir: str, section: str, key: str | None, value) -> None:
    """Set ``summary[section]`` (or ``summary[section][key]``) under a lock on the store folder, so
    that dumps of different splits finishing together do not lose each other's entries."""
    fd = os.open(store_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = os.path.join(store_dir, SUMMARY)
        summary = read_json(path) if os.path.isfile(path) else {}
        if key is None:
            summary[section] = value
        else:
            summary.setdefault(section, {})[key] = value
        write_json(path, summary)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def remove_split(store_dir: str, split: str) -> None:
    """Delete a split's files (index first, so the split never looks complete while half-removed)."""
    import shutil

    array, index, parts = split_paths(store_dir, split)
    for path in (index, array):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    shutil.rmtree(parts, ignore_errors=True)
