"""The feature cache: a frozen upstream's hidden states, computed once per split, read by training.

    python -m upstream_tokens cache --csv data/bvcc/train.csv --split train -u wavlm_base_plus \
        --store cache/wavlm_base_plus [--layers hidden_states] [--dtype float16]

A run that keeps its upstream frozen (no ``-f``: SALF-MOS, MoE-MOS, a frozen probe of a new upstream)
spends nearly all its time in the upstream's forward, at every step of every epoch. The cache does that
forward once: one pass of the eval-mode upstream (:class:`~upstream_tokens.extract.FeatureExtractor`,
padding-exact for WavLM / HuBERT / wav2vec 2.0) writes the hidden states of the layers the featurizer
needs. ``run_downstream.py ... -o config.downstream_expert.datarc.feature_cache=STORE`` then trains and
evaluates from it (:mod:`distilmos.upstream.cached`).

Layout: the token store's (:mod:`distilmos.data.stores`, :mod:`upstream_tokens.splits`): ``meta.json``
(upstream, checkpoint and its sha256, layers, feature dim, frame law, dtype; written when the store is
created), ``<split>.npy`` ``[total_frames, n_layers, dim]`` in the order of the split's CSV, and
``<split>.index.json``; atomic writes, resumable and shardable dumps (byte-identical to an uninterrupted
one), O(1) memory-mapped reads. float32 by default; ``--dtype float16`` halves the disk. The reader,
:class:`~distilmos.data.stores.FeatureStore`, lives in the package (the runner and the experts read the
cache without importing this tool); it is re-exported here, where it was first public.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence

import numpy as np
import torch

from distilmos.data.stores import META, FeatureCacheError, FeatureStore

from .extract import FeatureExtractor, RunOptions, parse_layers
from .splits import RowCodec, finalize_rows, write_split
from .store import upstream_meta, write_json

__all__ = [
    "FeatureCacheError",
    "FeatureStore",
    "check_disk",
    "disk_bytes",
    "dump_features",
    "merge_features",
    "open_store",
]

DTYPES = ("float32", "float16")


def _meta(upstream: str, ckpt: str | None, extractor: FeatureExtractor, dtype: str) -> dict:
    return {**upstream_meta(upstream, ckpt, extractor), "kind": "features", "feature_dtype": dtype}


def open_store(
    store_dir: str, upstream: str, ckpt: str | None, layers, dtype: str, get_extractor: Callable[[], FeatureExtractor]
) -> FeatureStore:
    """The cache at ``store_dir``, created (its meta written, atomically) if it does not exist yet, or
    checked against this run if it does."""
    if dtype not in DTYPES:
        raise FeatureCacheError(f"--dtype {dtype!r}: choose from {', '.join(DTYPES)}")
    if os.path.isfile(os.path.join(store_dir, META)):
        store = FeatureStore(store_dir)
        problems = store.mismatches(upstream, ckpt)
        if store.meta["feature_dtype"] != dtype:
            problems.append(f"dtype: cache has {store.meta['feature_dtype']}, run uses {dtype}")
        wanted = parse_layers(layers, store.n_layers_upstream)
        if wanted != store.layers:
            problems.append(f"layers: cache has {store.layers}, run uses {wanted}")
        store.refuse(problems)
        return store
    extractor = get_extractor()
    os.makedirs(store_dir, exist_ok=True)
    # every rank of a sharded dump writes the same bytes, so a race between them is harmless
    write_json(os.path.join(store_dir, META), _meta(upstream, ckpt, extractor, dtype))
    return FeatureStore(store_dir)


def disk_bytes(store: FeatureStore, lengths: Sequence[int]) -> int:
    """Bytes of a split's array: frames × layers × dim × bytes per value."""
    frames = sum(store.expected_frames(n) for n in lengths)
    return frames * len(store.layers) * int(store.meta["feature_dim"]) * store.dtype.itemsize


def check_disk(store: FeatureStore, split: str, lengths: Sequence[int], nshard: int) -> int:
    """Print what the split will take, and refuse to start when the disk cannot hold it (the parts and
    the final array exist together while the split is merged)."""
    need = disk_bytes(store, lengths)
    frames = sum(store.expected_frames(n) for n in lengths)
    peak = 2 * need
    free = shutil.disk_usage(store.path).free
    # printed, not logged: the disk a dump will take must show whatever the logging set-up
    print(
        f"cache {split}: {frames} frames x {len(store.layers)} layers x {store.meta['feature_dim']} dims x "
        f"{store.dtype.itemsize} bytes = {need} bytes ({need / 2**30:.2f} GiB, {peak / 2**30:.2f} GiB while "
        f"merging); {free / 2**30:.2f} GiB free in {store.path}",
        file=sys.stderr,
    )
    if free < peak:
        raise FeatureCacheError(
            f"not enough free space in {store.path} for split {split!r}: {frames} frames x {len(store.layers)} "
            f"layers x {store.meta['feature_dim']} dims x {store.dtype.itemsize} bytes = {need / 2**30:.2f} GiB, "
            f"{peak / 2**30:.2f} GiB while merging, {free / 2**30:.2f} GiB free; free some space, cache fewer "
            "layers (--layers, or -s in the run), or use --dtype float16"
        )
    return need


def _feature_codec(store: FeatureStore, _extractor: FeatureExtractor) -> RowCodec:
    dtype = store.dtype

    def encode(feats: torch.Tensor):
        # feats [n_layers, frames, dim] -> rows [frames, n_layers, dim]
        return feats.transpose(0, 1).cpu().numpy().astype(dtype), np.zeros(0)

    return RowCodec(dtype, store.row_shape, encode)


def dump_features(
    csv: str,
    store_dir: str,
    split: str,
    upstream: str,
    upstream_ckpt: str | None = None,
    *,
    layers: str | Sequence[int] = "hidden_states",
    dtype: str = "float32",
    extractor: FeatureExtractor | None = None,
    on_part: Callable[[int], None] | None = None,
    **run_options,
) -> dict:
    """Cache the hidden states of every utterance of ``csv`` as split ``split``; returns the split's
    summary (``nshard == 1``) or this rank's progress (then ``merge_features``). ``run_options`` are those
    of :class:`~upstream_tokens.extract.RunOptions` (device, batching, nshard, rank, progress, overwrite)."""
    run = RunOptions(**run_options)
    built = [extractor]

    def get_extractor() -> FeatureExtractor:
        if built[0] is None:
            built[0] = FeatureExtractor.from_spec(upstream, upstream_ckpt, layers=layers, device=run.device)
        return built[0]

    def checked_extractor(store: FeatureStore) -> FeatureExtractor:
        ex = get_extractor()
        if list(ex.layers) != store.layers or ex.feature_dim != store.meta["feature_dim"]:
            raise FeatureCacheError(
                f"the upstream gives layers {ex.layers} of dim {ex.feature_dim}; the cache "
                f"{store.path} holds {store.layers} of dim {store.meta['feature_dim']}"
            )
        return ex

    def check_room(store: FeatureStore, lengths: list[int]) -> None:
        if run.rank == 0:
            check_disk(store, split, lengths, run.nshard)

    # created (or checked against this run) before the split's lock, which lives in the cache's folder
    open_store(store_dir, upstream, upstream_ckpt, layers, dtype, get_extractor)
    return write_split(
        csv,
        FeatureStore,
        store_dir,
        split,
        run,
        get_extractor=checked_extractor,
        codec_of=_feature_codec,
        source=lambda store: {"store_meta": {k: v for k, v in store.meta.items() if k != "versions"}},
        finalize=merge_features,
        check=check_room,
        on_part=on_part,
    )


def merge_features(store_dir: str, split: str, nshard: int | None = None) -> dict:
    """Write the split's array and index from the parts of every rank (see :func:`dump_features`)."""
    store = FeatureStore(store_dir)

    def summarize(base: dict) -> dict:
        return {
            "layers": base["layers"],
            "n_utterances": base["n_utterances"],
            "total_frames": base["total_frames"],
            "bytes": base["total_frames"] * int(np.prod(store.row_shape)) * store.dtype.itemsize,
            "n_batches": base["n_batches"],
            "batching": base["batching"],
            "csv": base["csv"],
        }

    return finalize_rows(store, split, store.dtype, store.row_shape, summarize, nshard)
