"""``dump`` and ``merge`` of a token store: token ids of every utterance of a split, resumable and
shardable (the machinery, and the files a dump writes, are :mod:`upstream_tokens.splits`).

Under ``torchrun`` the rank and shard count default to ``RANK`` and ``WORLD_SIZE``; with a job array
pass ``--rank $SLURM_ARRAY_TASK_ID``; ``merge`` (:func:`finalize_split`) then writes the split.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
import torch

from distilmos.data.stores import CENTROIDS, TokenStore, TokenStoreError, split_paths
from distilmos.fileio import sha256_file

from .extract import FeatureExtractor, FrameLaw, RunOptions
from .kmeans import assign
from .splits import RowCodec, finalize_rows, read_plan, write_split

log = logging.getLogger(__name__)


def _build_extractor(store: TokenStore, device, upstream_ckpt: str | None, probe_seed: int) -> FeatureExtractor:
    meta = store.meta
    ckpt = meta.get("upstream_ckpt")
    if upstream_ckpt is not None:  # a checkpoint that moved: accepted only when it is the same file
        store.check(None, upstream_ckpt)
        ckpt = upstream_ckpt
    elif ckpt and meta.get("upstream_ckpt_sha256"):
        if not os.path.isfile(ckpt):
            raise TokenStoreError(f"the store's checkpoint {ckpt} is not there; give its new path with -k PATH")
        store.check(None, ckpt)
    return FeatureExtractor.from_spec(meta["upstream"], ckpt, layers=store.layers, device=device, probe_seed=probe_seed)


def _check_extractor(store: TokenStore, extractor: FeatureExtractor) -> None:
    meta = store.meta
    law = FrameLaw(**meta["frame_law"])
    problems = []
    if list(extractor.layers) != store.layers:
        problems.append(f"layers {extractor.layers} vs store {store.layers}")
    if extractor.frame_law != law:
        problems.append(f"frame law {extractor.frame_law} vs store {law}")
    if extractor.feature_dim != meta["feature_dim"]:
        problems.append(f"feature dim {extractor.feature_dim} vs store {meta['feature_dim']}")
    if "padding_exact" in meta and extractor.padding_exact != meta["padding_exact"]:
        problems.append(f"padding-exact forward {extractor.padding_exact} vs store {meta['padding_exact']}")
    if problems:
        raise TokenStoreError(f"the upstream does not match store {store.path}: " + "; ".join(problems))


def dump_split(
    csv: str,
    store_dir: str,
    split: str,
    *,
    upstream_ckpt: str | None = None,
    extractor: FeatureExtractor | None = None,
    on_part: Callable[[int], None] | None = None,
    **run_options,
) -> dict:
    """Dump the tokens of every utterance of ``csv`` as split ``split`` of the store.

    Returns the split summary (``nshard == 1``) or this rank's progress. ``run_options`` are those of
    :class:`~upstream_tokens.extract.RunOptions` (device, batching, nshard, rank, progress, overwrite).
    ``on_part(batch)`` is called after each part file is written (progress hooks; tests use it to
    interrupt a run). ``extractor`` replaces the upstream the store's meta names (it must match the meta).
    """
    run = RunOptions(**run_options)

    def checked_extractor(store: TokenStore) -> FeatureExtractor:
        built = extractor or _build_extractor(store, run.device, upstream_ckpt, store.meta.get("seed", 0))
        _check_extractor(store, built)
        return built

    return write_split(
        csv,
        TokenStore,
        store_dir,
        split,
        run,
        get_extractor=checked_extractor,
        codec_of=_token_codec,
        source=lambda store: {"centroids_sha256": sha256_file(os.path.join(store.path, CENTROIDS))},
        finalize=finalize_split,
        on_part=on_part,
    )


def _token_codec(store: TokenStore, extractor: FeatureExtractor) -> RowCodec:
    """Rows = the nearest centroid of each frame in every layer; stats = the squared distances' sums."""
    centroids = torch.from_numpy(store.centroids()).to(extractor.device)
    dtype = np.dtype(store.meta["token_dtype"])

    def encode(feats: torch.Tensor):
        labels, sqdist = assign(feats, centroids)
        return labels.t().cpu().numpy().astype(dtype), sqdist.double().sum(1).cpu().numpy()

    return RowCodec(dtype, (len(store.layers),), encode)


def finalize_split(store_dir: str, split: str, nshard: int | None = None) -> dict:
    """``merge``: write ``<split>.npy`` and ``<split>.index.json`` (CSV order) from the parts of every
    planned batch, record the split's summary (frames, clusters used and inertia per layer), and remove
    the parts. Returns the summary."""
    store = TokenStore(store_dir)
    doc = read_plan(store, split)
    if doc is not None and doc["centroids_sha256"] != sha256_file(os.path.join(store.path, CENTROIDS)):
        raise TokenStoreError(
            f"{split_paths(store.path, split)[2]} was dumped with other centroids (the store was "
            "refitted); dump the split again with --overwrite"
        )
    n_layers, k = len(store.layers), store.n_clusters
    usage = np.zeros((n_layers, k), dtype=np.int64)

    def count(rows: np.ndarray, _stats) -> None:
        for layer in range(n_layers):
            usage[layer] += np.bincount(rows[:, layer].astype(np.int64), minlength=k)

    def summarize(base: dict) -> dict:
        total, inertia = base["total_frames"], base["stats"] or [0.0] * n_layers
        return {
            "layers": base["layers"],
            "n_utterances": base["n_utterances"],
            "frames_per_layer": [total] * n_layers,
            "clusters_used": [int((row > 0).sum()) for row in usage],
            "inertia": inertia,
            "inertia_per_frame": [x / max(total, 1) for x in inertia],
            "n_batches": base["n_batches"],
            "batching": base["batching"],
            "csv": base["csv"],
        }

    return finalize_rows(store, split, store.meta["token_dtype"], (n_layers,), summarize, nshard, on_part=count)
