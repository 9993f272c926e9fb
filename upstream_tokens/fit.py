"""``fit``: learn per-layer k-means centroids from a frozen upstream, streaming over a data list.

Each planned batch is forwarded once; the frames of all selected layers go, shuffled together within the
batch (mini-batches of consecutive frames of one utterance would be far from i.i.d.), to one online
clustering per layer (:mod:`upstream_tokens.kmeans`). Batches are visited in a seeded random order, so
the stream is not sorted by length. Nothing grows with the corpus: memory is one forward batch plus the
centroids.

Sharded fit (a cluster's GPUs, a job array)::

    python -m upstream_tokens fit ... --out STORE --nshard N --rank R    # for R in 0..N-1, anywhere
    python -m upstream_tokens fit --out STORE --from_shards N            # once all ranks are done

Rank ``R`` takes the planned batches ``b`` with ``b % N == R``, clusters them on its own and writes its
centroids and per-centroid counts to ``STORE/fit_shards/rankR-of-N.npz`` (kilobytes to megabytes,
whatever the corpus size). ``--from_shards`` then clusters, per layer, the ``N * k`` shard centroids
weighted by their counts (Guha et al.'s two-level streaming k-means) into the final ``k`` centroids,
writes the store and removes ``fit_shards/``. With ``N = 1`` this is not used: the plain fit is the
paper's single online pass.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence

import numpy as np
import torch

from distilmos.data.datalist import read_rows
from distilmos.data.stores import (
    CENTROIDS,
    FIT_SHARDS,
    INDEX_SUFFIX,
    META,
    PARTS_SUFFIX,
    SUMMARY,
    TokenStoreError,
)

from .extract import FeatureExtractor, RunOptions, check_shard, read_list
from .kmeans import BACKENDS, KMeansError, make_kmeans, merge_centroids
from .store import token_dtype, upstream_meta, write_json, write_npy

log = logging.getLogger(__name__)


def shard_path(out: str, nshard: int, rank: int) -> str:
    return os.path.join(out, FIT_SHARDS, f"rank{rank}-of-{nshard}.npz")


def _clear_store(out: str, keep_shards: bool = False) -> None:
    """Remove the files of an earlier store in ``out`` (only names a store uses; nothing else)."""
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if (
            name in (META, CENTROIDS, SUMMARY)
            or name.endswith(INDEX_SUFFIX)
            or (name.endswith(".npy") and os.path.isfile(path))
        ):
            os.remove(path)
        elif name.endswith(PARTS_SUFFIX) or (name == FIT_SHARDS and not keep_shards):
            shutil.rmtree(path)


def fit_store(
    csv: str,
    upstream: str,
    ckpt: str | None,
    out: str,
    *,
    layers: str | Sequence[int] = "all",
    n_clusters: int = 200,
    batch_size: int = 64,
    init_size: int | None = None,
    backend: str = "sklearn",
    seed: int = 0,
    extractor: FeatureExtractor | None = None,
    **run_options,
) -> dict:
    """Fit the centroids of every selected layer on ``csv`` and write the store ``out`` (or, with
    ``nshard > 1``, this rank's shard file). Returns the fit summary.

    ``run_options`` are those of :class:`~upstream_tokens.extract.RunOptions` (device, batching, nshard,
    rank, progress, overwrite). ``extractor`` replaces the upstream built from ``upstream``/``ckpt``
    (which are still recorded in the meta); tests and benchmarks use it to wrap the upstream.
    """
    run = RunOptions(**run_options)
    if backend not in BACKENDS:  # before any long work
        raise KMeansError(f"unknown k-means backend {backend!r}; choose from {', '.join(BACKENDS)}")
    os.makedirs(out, exist_ok=True)
    if run.nshard == 1 and os.path.isfile(os.path.join(out, META)):
        if not run.overwrite:
            raise TokenStoreError(
                f"{out} already holds a token store; pass --overwrite to replace it (its dumped splits are removed too)"
            )
    started = time.perf_counter()
    read_rows(csv)  # a missing, unreadable or header-less list fails before the upstream is built
    if extractor is None:
        extractor = FeatureExtractor.from_spec(upstream, ckpt, layers=layers, device=run.device, probe_seed=seed)
    utterances, lengths = read_list(csv, extractor.frame_law)  # its frame law says how short a clip may be
    batching = run.batching.resolved(extractor.padding_exact)
    plan = batching.plan(lengths)
    # Batches in a seeded random order (the plan is sorted by length), this rank's share of them.
    order = run.mine(int(b) for b in np.random.default_rng(seed).permutation(len(plan)))
    kmeans = make_kmeans(backend, len(extractor.layers), n_clusters, batch_size, init_size, seed, device=run.device)
    shuffle = torch.Generator().manual_seed(seed)
    n_utts = 0
    for batch in extractor.iter_batches(
        utterances, plan, order, num_workers=batching.num_workers, progress=run.progress, desc=run.desc("fit")
    ):
        perm = torch.randperm(batch.feats.shape[1], generator=shuffle).to(batch.feats.device)
        kmeans.partial_fit(batch.feats[:, perm])
        n_utts += len(batch.indices)
    kmeans.finalize()
    elapsed = time.perf_counter() - started

    meta = _meta(upstream, ckpt, extractor, kmeans, backend, seed, batching, csv, len(utterances))
    summary = _fit_summary(extractor.layers, n_utts, kmeans.n_frames, kmeans.counts, kmeans.inertia, kmeans.n_steps)
    log.info(
        "fit: %d utterances, %d frames per layer in %.1f s (%.1f utt/s)",
        n_utts,
        kmeans.n_frames,
        elapsed,
        n_utts / max(elapsed, 1e-9),
    )
    if run.nshard > 1:
        _write_shard(shard_path(out, run.nshard, run.rank), meta, kmeans, n_utts)
        return summary
    if os.path.isfile(os.path.join(out, META)):
        _clear_store(out)
    _write_store(out, meta, kmeans.cluster_centers, summary)
    return summary


def _meta(upstream, ckpt, extractor, kmeans, backend, seed, batching, csv, n_utts) -> dict:
    kmeans_params = {
        "n_clusters": kmeans.n_clusters,
        "batch_size": kmeans.batch_size,
        "init_size": kmeans.init_size,
        "init": "k-means++",
        "update": "partial_fit (MiniBatchKMeans)"
        if backend == "sklearn"
        else "mini-batch, per-centre counts (Sculley 2010)",
    }
    if backend == "sklearn":
        kmeans_params["reassignment_ratio"] = kmeans.reassignment_ratio
    return {
        **upstream_meta(upstream, ckpt, extractor),
        "n_clusters": kmeans.n_clusters,
        "token_dtype": token_dtype(kmeans.n_clusters).name,
        "seed": seed,
        "backend": backend,
        "kmeans": kmeans_params,
        "fit_batching": batching.as_dict(),
        "fit_data": {"csv": os.path.abspath(csv), "n_utterances": n_utts},
        "fit_shards": 1,
    }


def _fit_summary(layers, n_utts, n_frames, counts, inertia, n_steps) -> dict:
    inertia = [float(x) for x in inertia]
    return {
        "layers": list(layers),
        "n_utterances": int(n_utts),
        "frames_per_layer": [int(n_frames)] * len(layers),
        "clusters_used": [int((row > 0).sum()) for row in counts],
        "inertia": inertia,  # online inertia, see upstream_tokens.kmeans
        "inertia_per_frame": [x / max(int(n_frames), 1) for x in inertia],
        "n_steps": int(n_steps),
    }


def _write_store(out: str, meta: dict, centroids: np.ndarray, fit_summary: dict) -> None:
    """Centroids and summary first, ``meta.json`` last: a store without meta is not a store."""
    write_npy(os.path.join(out, CENTROIDS), centroids.astype(np.float32))
    write_json(os.path.join(out, SUMMARY), {"fit": fit_summary, "dump": {}})
    write_json(os.path.join(out, META), meta)


def _write_shard(path: str, meta: dict, kmeans, n_utts: int) -> None:
    from distilmos.fileio import atomic_write

    with atomic_write(path, "wb") as handle:
        np.savez(
            handle,
            centers=kmeans.cluster_centers,
            counts=kmeans.counts,
            inertia=kmeans.inertia,
            n_frames=np.int64(kmeans.n_frames),
            n_steps=np.int64(kmeans.n_steps),
            n_utterances=np.int64(n_utts),
            meta=np.array(json.dumps(meta, sort_keys=True)),
        )


def fit_from_shards(out: str, nshard: int, *, overwrite: bool = False) -> dict:
    """Combine the ``nshard`` shard files in ``out/fit_shards`` into the store ``out``; return the summary."""
    check_shard(nshard, 0)
    if os.path.isfile(os.path.join(out, META)) and not overwrite:
        raise TokenStoreError(f"{out} already holds a token store; pass --overwrite to replace it")
    paths = [shard_path(out, nshard, r) for r in range(nshard)]
    missing = [r for r, p in enumerate(paths) if not os.path.isfile(p)]
    if missing:
        raise TokenStoreError(
            f"{out}: fit shards of rank(s) {missing} (of {nshard}) are missing; run "
            f"`fit ... --nshard {nshard} --rank R` for them first"
        )
    shards = [dict(np.load(p)) for p in paths]
    metas = [json.loads(str(s["meta"])) for s in shards]
    for r, m in enumerate(metas[1:], start=1):
        if m != metas[0]:
            diff = sorted(k for k in set(m) | set(metas[0]) if m.get(k) != metas[0].get(k))
            raise TokenStoreError(f"{paths[r]} was fitted with other settings than {paths[0]} (fields {diff})")
    meta = dict(metas[0], fit_shards=nshard)
    centers, counts = merge_centroids(
        [(s["centers"], s["counts"]) for s in shards], meta["n_clusters"], seed=meta["seed"]
    )
    n_frames = sum(int(s["n_frames"]) for s in shards)
    summary = _fit_summary(
        meta["layers"],
        sum(int(s["n_utterances"]) for s in shards),
        n_frames,
        counts,
        np.sum([s["inertia"] for s in shards], axis=0),
        sum(int(s["n_steps"]) for s in shards),
    )
    summary["shards"] = nshard
    if os.path.isfile(os.path.join(out, META)):
        _clear_store(out, keep_shards=True)
    _write_store(out, meta, centers, summary)
    shutil.rmtree(os.path.join(out, FIT_SHARDS))
    return summary
