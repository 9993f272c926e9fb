"""The readers of the on-disk frame stores: the token store (per-layer k-means token ids, the targets of
DistilMOS) and the feature cache (a frozen upstream's hidden states). The writers (fit, dump, cache, merge)
are :mod:`upstream_tokens`; the experts and the runner read through this module alone, so the package
never imports the tool above it.

Layout of a store folder (one per upstream, checkpoint, k and layer set)::

    meta.json               what the tokens were made from (written last by ``fit``: its presence
                            marks a complete fit)
    centroids.npy           float32 [n_layers, k, feature_dim], row i for meta["layers"][i]
    summary.json            {"fit": {...}, "dump": {split: {...}}}: frames, clusters used and
                            inertia per layer
    <split>.npy             int16 (int32 when k > 32767) [total_frames, n_layers], utterances
                            concatenated in the order of the split's CSV
    <split>.index.json      {"items": [[sample_id, offset, length], ...], ...} (written after the
                            array: its presence marks a complete split)
    <split>.parts/          only while a dump is under way (resumable; removed when the split is final)
    fit_shards/             only between a sharded ``fit --nshard N --rank R`` and ``fit --from_shards N``

Token frames of an utterance are those of its *unpadded* upstream output, computed as the upstream
gives them for that waveform alone (see :mod:`upstream_tokens.extract` for how, and for the batching
caveat). A downstream pairs them with features it computes itself, whose frame count can differ by a
frame (s3prl's Featurizer cuts at ``round(samples / downsample_rate)``); the rule is: trim tokens and
features to the shorter of the two, and treat a gap of more than 2 frames as a store built for another
upstream (an error).

:class:`TokenStore` opens ``meta.json`` and the split indexes eagerly (and checks every array's size
against its index, so a truncated file fails at once), but maps the arrays lazily, once per process:
a store handed to DataLoader workers (forked or pickled) maps its files afresh in each worker.
:class:`FeatureStore` reads a feature cache the same way (``<split>.npy`` is ``[total_frames, n_layers,
dim]`` there, float32 or float16; see :mod:`upstream_tokens.feature_cache` for how it is made).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence

import numpy as np
import torch

from distilmos.errors import ToolkitError
from distilmos.fileio import sha256_file

FORMAT_VERSION = 1
META = "meta.json"
CENTROIDS = "centroids.npy"
SUMMARY = "summary.json"
INDEX_SUFFIX = ".index.json"
PARTS_SUFFIX = ".parts"
FIT_SHARDS = "fit_shards"

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESERVED = {"meta", "centroids", "summary", "fit_shards"}


class TokenStoreError(ToolkitError, ValueError):
    """A token store that cannot serve this run: missing, incomplete, damaged, or built for another
    upstream/checkpoint/k/layer set. The message says which and what to do."""


def check_split_name(split: str) -> str:
    """Refuse split names that are not plain file-name stems or that collide with store files."""
    if not _SPLIT_NAME.match(split or "") or split in _RESERVED:
        raise TokenStoreError(
            f"invalid split name {split!r}: use letters, digits, '_', '-', '.' "
            f"(not starting with '.'), and none of {sorted(_RESERVED)}"
        )
    return split


def split_paths(store_dir: str, split: str) -> tuple[str, str, str]:
    """``(array, index, parts folder)`` paths of a split."""
    check_split_name(split)
    base = os.path.join(store_dir, split)
    return base + ".npy", base + INDEX_SUFFIX, base + PARTS_SUFFIX


def read_json(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _npy_header(path: str) -> tuple[tuple, np.dtype, int]:
    """``(shape, dtype, data offset)`` of a .npy file, read from its header only."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(
            version
        )
        if read_header is None:
            raise ValueError(f".npy format version {version} not supported")
        shape, fortran, dtype = read_header(handle)
        if fortran:
            raise ValueError("Fortran-ordered array")
        return tuple(shape), np.dtype(dtype), handle.tell()


def _check_items(items, total: int, index_path: str, redo: str, error) -> None:
    """Refuse an index whose ``[sample_id, offset, length]`` items do not tile its ``total`` frames."""
    covered = 0
    for sample_id, start, length in items:
        if not (0 <= int(start) and 0 <= int(length) and int(start) + int(length) <= total):
            raise error(
                f"{index_path}: utterance {sample_id!r} at frames {start}..{int(start) + int(length)} lies "
                f"outside the split's {total} frames; the index is damaged: {redo}"
            )
        covered += int(length)
    if covered != total:
        raise error(
            f"{index_path}: its utterances cover {covered} frames, the split holds {total}; the index is "
            f"damaged: {redo}"
        )


# ------------------------------------------------------------------------------------------ readers


class FrameStore:
    """Read access to a store of per-frame rows of an upstream (see the module docstring for the layout):
    the base of :class:`TokenStore` (a row is one token id per layer) and of
    :class:`FeatureStore` (a row is the hidden states of every stored layer).

    ``rows(sample_id)`` returns an utterance's ``[frames, *row_shape]`` block in O(1): a dict lookup and
    a slice of a memory-mapped array. A sample id is looked up across every complete split.
    """

    #: what the store is called in messages, and how a missing split is made
    KIND = "store"
    BUILD_HINT = ""
    DUMP_HINT = ""
    #: the meta key naming the array's dtype
    DTYPE_KEY = ""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        meta_path = os.path.join(self.path, META)
        if not os.path.isfile(meta_path):
            raise self.error(
                f"{self.path}: not a {self.KIND} (no {META}){self._missing_meta_hint()}; {self.BUILD_HINT}"
            )
        self.meta: dict = read_json(meta_path)
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise self.error(
                f"{meta_path}: format_version {self.meta.get('format_version')!r}, this reader reads {FORMAT_VERSION}"
            )
        self._check_meta(meta_path)
        self._dtype = np.dtype(self.meta[self.DTYPE_KEY])
        self._index: dict[str, tuple[str, int, int]] = {}
        self._splits: dict[str, dict] = {}
        for name in sorted(os.listdir(self.path)):
            if name.endswith(INDEX_SUFFIX) and not name.startswith("."):
                self._open_split(name[: -len(INDEX_SUFFIX)])
        self._pid = os.getpid()
        self._arrays: dict[str, np.ndarray] = {}

    # -- what a subclass says
    @staticmethod
    def error(message: str) -> ToolkitError:
        return TokenStoreError(message)

    def _missing_meta_hint(self) -> str:
        return ""

    def _check_meta(self, meta_path: str) -> None:
        """Hook: refuse a meta that disagrees with itself or with the store's arrays (cheap: headers only)."""

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one frame's row."""
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def _open_split(self, split: str) -> None:
        array_path, index_path, _ = split_paths(self.path, split)
        index = read_json(index_path)
        total, row_shape = int(index["total_frames"]), tuple(self.row_shape)
        redo = f"rerun the dump of split {split!r} with --overwrite"
        if not os.path.isfile(array_path):
            raise self.error(f"{array_path}: missing, but {index_path} lists {len(index['items'])} utterances; {redo}")
        try:
            shape, dtype, offset = _npy_header(array_path)
        except Exception as exc:  # a file cut inside its header, or not an .npy at all
            raise self.error(
                f"{array_path}: unreadable {self.KIND.split()[0]} array ({exc}); the file is truncated or damaged: "
                f"{redo}"
            ) from exc
        row_size = int(np.prod(row_shape, dtype=np.int64))
        expected_size = offset + total * row_size * self._dtype.itemsize
        actual_size = os.path.getsize(array_path)
        if shape != (total, *row_shape) or dtype != self._dtype:
            raise self.error(
                f"{array_path}: holds {dtype}{list(shape)}, its index wants {self._dtype}{[total, *row_shape]}; {redo}"
            )
        if actual_size != expected_size:
            raise self.error(
                f"{array_path}: truncated or damaged: {actual_size} bytes, expected {expected_size} "
                f"({total} frames x {list(row_shape)} of {self._dtype}); {redo}"
            )
        _check_items(index["items"], total, index_path, redo, self.error)
        self._splits[split] = {"path": array_path, "n_utterances": len(index["items"]), "total_frames": total}
        for sample_id, start, length in index["items"]:
            # The first split (in name order) that holds an id wins; the same utterance in two splits
            # has the same rows anyway.
            self._index.setdefault(sample_id, (split, int(start), int(length)))

    # -- meta
    @property
    def layers(self) -> list[int]:
        return [int(n) for n in self.meta["layers"]]

    @property
    def downsample_rate(self) -> int:
        return int(self.meta["downsample_rate"])

    @property
    def splits(self) -> list[str]:
        return sorted(self._splits)

    def split_sizes(self) -> dict[str, int]:
        """``{split: number of utterances}`` of every complete split."""
        return {s: v["n_utterances"] for s, v in sorted(self._splits.items())}

    @property
    def summary(self) -> dict:
        path = os.path.join(self.path, SUMMARY)
        return read_json(path) if os.path.isfile(path) else {}

    def expected_frames(self, n_samples: int) -> int:
        """Frames the upstream gives for a 16 kHz waveform of ``n_samples`` samples (its frame law)."""
        law = self.meta["frame_law"]
        return max(0, (int(n_samples) + int(law["offset"])) // int(law["rate"]))

    def mismatches(
        self, upstream: str | None, upstream_ckpt: str | None, layers: Sequence[int] | None = None
    ) -> list[str]:
        """Every field in which this store differs from a run (``None`` skips a field);
        ``upstream_ckpt`` is compared by sha256 when it is a local file, else as given."""
        problems = []
        meta = self.meta
        if upstream is not None and upstream != meta["upstream"]:
            problems.append(f"upstream: store has {meta['upstream']!r}, run uses {upstream!r}")
        if upstream_ckpt is not None:
            if os.path.isfile(upstream_ckpt):
                digest = sha256_file(upstream_ckpt)
                if digest != meta.get("upstream_ckpt_sha256"):
                    problems.append(
                        f"upstream checkpoint: {upstream_ckpt} has sha256 {digest[:16]}..., store was built from "
                        f"{meta.get('upstream_ckpt')!r} (sha256 {str(meta.get('upstream_ckpt_sha256'))[:16]}...)"
                    )
            elif upstream_ckpt != meta.get("upstream_ckpt"):
                problems.append(
                    f"upstream checkpoint: store has {meta.get('upstream_ckpt')!r}, run uses {upstream_ckpt!r}"
                )
        if layers is not None and [int(n) for n in layers] != self.layers:
            problems.append(f"layers: store has {self.layers}, run uses {[int(n) for n in layers]}")
        return problems

    def refuse(self, problems: list[str]) -> None:
        """Raise this store's error listing ``problems`` (if any)."""
        if problems:
            raise self.error(
                f"{self.KIND} {self.path} does not match this run:\n  - "
                + "\n  - ".join(problems)
                + f"\n{self.BUILD_HINT[0].upper()}{self.BUILD_HINT[1:]}, or point to the right one."
            )

    # -- rows
    def __contains__(self, sample_id) -> bool:
        return sample_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def sample_ids(self) -> list[str]:
        return list(self._index)

    def split_of(self, sample_id: str) -> str:
        return self._locate(sample_id)[0]

    def _locate(self, sample_id: str) -> tuple[str, int, int]:
        try:
            return self._index[sample_id]
        except KeyError:
            dumped = ", ".join(f"{s} ({v['n_utterances']})" for s, v in sorted(self._splits.items())) or "none"
            raise self.error(
                f"sample id {sample_id!r} is in no split of {self.KIND} {self.path} (dumped splits: {dumped}); "
                f"{self.DUMP_HINT}"
            ) from None

    def _array(self, split: str) -> np.ndarray:
        if os.getpid() != self._pid:  # a forked worker: map the files afresh in this process
            self._arrays, self._pid = {}, os.getpid()
        array = self._arrays.get(split)
        if array is None:
            array = np.load(self._splits[split]["path"], mmap_mode="r")
            self._arrays[split] = array
        return array

    def rows(self, sample_id: str) -> np.ndarray:
        """The ``[frames, *row_shape]`` block of one utterance (a read-only memory map slice)."""
        split, start, length = self._locate(sample_id)
        return self._array(split)[start : start + length]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = {}  # memory maps do not travel between processes
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._pid = os.getpid()


class TokenStore(FrameStore):
    """A token store: ``tokens(sample_id)`` is ``LongTensor[frames, len(layers)]``."""

    KIND = "token store"
    BUILD_HINT = "build it with `python -m upstream_tokens fit ...`"
    DUMP_HINT = "dump its data list with `python -m upstream_tokens dump --csv LIST --store ... --split NAME`"
    DTYPE_KEY = "token_dtype"

    def _missing_meta_hint(self) -> str:
        if os.path.isdir(os.path.join(self.path, FIT_SHARDS)):
            return (
                f" (it holds fit_shards/: finish with `python -m upstream_tokens fit --out {self.path} "
                "--from_shards N`)"
            )
        return ""

    @property
    def row_shape(self) -> tuple[int, ...]:
        return (len(self.layers),)

    @property
    def n_clusters(self) -> int:
        return int(self.meta["n_clusters"])

    def _check_meta(self, meta_path: str) -> None:
        """``meta.json`` against itself and ``centroids.npy``: k, layers, feature size and token dtype must agree
        (a meta copied from another fit, or edited by hand, would train against the wrong classes)."""
        meta, problems = self.meta, []
        try:
            k, layers, dim = int(meta["n_clusters"]), [int(n) for n in meta["layers"]], int(meta["feature_dim"])
            dtype = np.dtype(meta["token_dtype"])
            law = meta["frame_law"]
            int(law["rate"]), int(law["offset"])
        except (KeyError, TypeError, ValueError) as exc:
            raise self.error(
                f"{meta_path}: not a valid token store meta ({type(exc).__name__}: {exc}); {self.BUILD_HINT}"
            ) from None
        if k < 1:
            problems.append(f"n_clusters is {k}")
        if not layers or len(set(layers)) != len(layers):
            problems.append(f"layers {layers} is empty or repeats a layer")
        if dtype.kind not in "iu" or np.iinfo(dtype).max < k - 1:
            problems.append(f"token_dtype {dtype.name} cannot hold token ids 0..{k - 1}")
        centroids = os.path.join(self.path, CENTROIDS)
        try:
            shape, cdtype, _ = _npy_header(centroids)
        except Exception as exc:  # missing, cut inside its header, or not an .npy at all
            raise self.error(
                f"{centroids}: unreadable ({exc}); the store is incomplete or damaged: "
                f"{self.BUILD_HINT} (with --overwrite)"
            ) from None
        wanted = (len(layers), k, dim)
        if shape != wanted or cdtype.kind != "f":
            problems.append(
                f"{CENTROIDS} holds {cdtype}{list(shape)} (layers x k x feature_dim), the meta wants "
                f"float{list(wanted)}"
                + (f": k {shape[1]} in the centroids, {k} in the meta" if len(shape) == 3 and shape[1] != k else "")
            )
        if problems:
            raise self.error(
                f"token store {self.path}: {META} and its arrays disagree: "
                + "; ".join(problems)
                + f". The store is damaged or mixes two fits: {self.BUILD_HINT} (with --overwrite)"
            )

    def centroids(self) -> np.ndarray:
        """float32 ``[n_layers, k, dim]``."""
        return np.load(os.path.join(self.path, CENTROIDS))

    def check(
        self,
        upstream: str | None,
        upstream_ckpt: str | None,
        n_clusters: int | None = None,
        layers: Sequence[int] | None = None,
    ) -> None:
        """Raise :class:`TokenStoreError` naming every field in which this store differs from a run."""
        problems = self.mismatches(upstream, upstream_ckpt, layers)
        if n_clusters is not None and int(n_clusters) != self.n_clusters:
            problems.append(f"n_clusters (k): store has {self.n_clusters}, run uses {int(n_clusters)}")
        self.refuse(problems)

    def tokens(self, sample_id: str) -> torch.Tensor:
        """``LongTensor[frames, len(layers)]`` of one utterance; an id outside ``0..k-1`` (a damaged split) is
        an error naming the utterance and its split (a check of a few hundred values per read)."""
        rows = np.asarray(self.rows(sample_id), dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_clusters):
            split = self.split_of(sample_id)
            bad = int(rows.max()) if rows.max() >= self.n_clusters else int(rows.min())
            raise self.error(
                f"{split_paths(self.path, split)[0]}: utterance {sample_id!r} holds token id {bad}, "
                f"outside 0..{self.n_clusters - 1} (n_clusters {self.n_clusters} in {META}); the split "
                f"is damaged: rerun its dump with --overwrite"
            )
        return torch.from_numpy(rows)

    def __repr__(self) -> str:
        return (
            f"TokenStore({self.path!r}, upstream={self.meta['upstream']!r}, k={self.n_clusters}, "
            f"layers={self.layers}, splits={self.splits})"
        )


# ----------------------------------------------------------------------------------- the feature cache


class FeatureCacheError(ToolkitError, ValueError):
    """A feature cache that cannot serve this run: missing, incomplete, damaged, built for another
    upstream, checkpoint or layer set, or no room on the disk for it. The message says what to do."""


class FeatureStore(FrameStore):
    """A feature cache: ``features(sample_id)`` is ``FloatTensor[n_layers, frames, dim]`` (float32 whatever
    the dtype on disk), row ``i`` being hidden state ``meta["layers"][i]``."""

    KIND = "feature cache"
    BUILD_HINT = "build it with `python -m upstream_tokens cache --csv LIST --split NAME -u UPSTREAM --store ...`"
    DUMP_HINT = "dump its data list with `python -m upstream_tokens cache --csv LIST --split NAME --store ...`"
    DTYPE_KEY = "feature_dtype"

    @staticmethod
    def error(message: str) -> ToolkitError:
        return FeatureCacheError(message)

    @property
    def row_shape(self) -> tuple[int, ...]:
        return (len(self.layers), int(self.meta["feature_dim"]))

    @property
    def n_layers_upstream(self) -> int:
        return int(self.meta["n_layers_upstream"])

    def check(self, upstream: str | None, upstream_ckpt: str | None, layers: Sequence[int] | None = None) -> None:
        """Raise :class:`FeatureCacheError` naming every field in which this cache differs from a run;
        ``layers`` are those the run needs (the cache may hold more)."""
        problems = self.mismatches(upstream, upstream_ckpt)
        if layers is not None:
            lacking = sorted(set(int(n) for n in layers) - set(self.layers))
            if lacking:
                problems.append(
                    f"layers: the run needs {sorted(set(int(n) for n in layers))}, "
                    f"the cache holds {self.layers} (missing {lacking})"
                )
        self.refuse(problems)

    def features(self, sample_id: str) -> torch.Tensor:
        """``FloatTensor[n_layers, frames, dim]`` of one utterance."""
        # a copy out of the read-only memory map: the tensor may be written to downstream, and the
        # frames are read from disk here anyway
        block = np.array(self.rows(sample_id), dtype=np.float32)
        return torch.from_numpy(block).transpose(0, 1)

    def __repr__(self) -> str:
        return (
            f"FeatureStore({self.path!r}, upstream={self.meta['upstream']!r}, layers={self.layers}, "
            f"dtype={self.meta['feature_dtype']}, splits={self.splits})"
        )
