"""``dump`` and ``merge``: token ids of every utterance of a split, resumable and shardable.

How a split is built::

    <split>.parts/plan.json       the batch plan (CSV order of ids, the batches, the batching options,
                                  the centroids' sha256): identical for every run and rank
    <split>.parts/b000017.npz     tokens of planned batch 17, written atomically when it is done
    <split>.npy, <split>.index.json   written by the final step, in CSV order; the parts are removed

A killed run leaves whole part files only; a rerun skips the batches whose part is there and redoes the
rest. Because batch composition is fixed by the plan (and padding can change features, see
:mod:`upstream_tokens.extract`), the final files are byte-identical to those of an uninterrupted run.

Sharding: rank ``R`` of ``N`` dumps the planned batches ``b % N == R`` into the same parts folder (a
shared file system); ``merge`` (:func:`finalize_split`) then writes the split. A single run
(``N = 1``) finalizes by itself. Under ``torchrun`` the rank and shard count default to ``RANK`` and
``WORLD_SIZE``; with a job array pass ``--rank $SLURM_ARRAY_TASK_ID``.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import time
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import torch

from distilmos.fileio import atomic_write, sha256_file

from .extract import Batching, FeatureExtractor, FrameLaw, check_shard, read_list
from .kmeans import assign
from .store import (CENTROIDS, TokenStore, TokenStoreError, npy_writer, read_json, remove_split, split_paths,
                    update_summary, write_json)

log = logging.getLogger(__name__)

PLAN = "plan.json"


def part_path(parts_dir: str, batch: int) -> str:
    return os.path.join(parts_dir, f"b{batch:06d}.npz")


def _part_ids(path: str) -> Optional[List[str]]:
    """The sample ids a part file holds, or None when it cannot be read."""
    try:
        with np.load(path) as part:
            return [str(x) for x in part["ids"]]
    except Exception:  # a part is written atomically, so this is a foreign or damaged file: redo it
        return None


def _write_part(path: str, ids: List[str], lengths: List[int], tokens: np.ndarray, inertia: np.ndarray) -> None:
    with atomic_write(path, "wb") as handle:
        np.savez(handle, ids=np.array(ids, dtype=str), lengths=np.asarray(lengths, dtype=np.int64),
                 tokens=tokens, inertia=inertia.astype(np.float64))


def _plan_doc(csv: str, split: str, utterances, plan, batching: Batching, store: TokenStore) -> dict:
    return {
        "split": split,
        "csv": os.path.abspath(csv),
        "sample_ids": [u.sample_id for u in utterances],
        "batches": [list(map(int, b)) for b in plan],
        "batching": batching.as_dict(),
        "centroids_sha256": sha256_file(os.path.join(store.path, CENTROIDS)),
    }


def _claim_plan(parts_dir: str, doc: dict) -> None:
    """Record the plan, or check it against the one a started dump recorded."""
    path = os.path.join(parts_dir, PLAN)
    if not os.path.isfile(path):
        os.makedirs(parts_dir, exist_ok=True)
        write_json(path, doc)
    recorded = read_json(path)  # re-read: another rank may have written it at the same moment
    if recorded != doc:
        fields = sorted(k for k in set(recorded) | set(doc) if recorded.get(k) != doc.get(k))
        raise TokenStoreError(
            f"{parts_dir} holds a dump started with another plan (differs in {fields}: another data list, "
            "batching options or centroids). Finish it with the same options, or pass --overwrite to start over.")


def _build_extractor(store: TokenStore, device, upstream_ckpt: Optional[str], probe_seed: int) -> FeatureExtractor:
    meta = store.meta
    ckpt = meta.get("upstream_ckpt")
    if upstream_ckpt is not None:  # a checkpoint that moved: accepted only when it is the same file
        store.check(None, upstream_ckpt)
        ckpt = upstream_ckpt
    elif ckpt and meta.get("upstream_ckpt_sha256"):
        if not os.path.isfile(ckpt):
            raise TokenStoreError(f"the store's checkpoint {ckpt} is not there; give its new path with -k PATH")
        store.check(None, ckpt)
    return FeatureExtractor.from_spec(meta["upstream"], ckpt, layers=store.layers, device=device,
                                      probe_seed=probe_seed)


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


def dump_split(csv: str, store_dir: str, split: str, *, device: Union[str, torch.device] = "cpu",
               batching: Batching = Batching(), nshard: int = 1, rank: int = 0, progress: bool = True,
               overwrite: bool = False, upstream_ckpt: Optional[str] = None,
               extractor: Optional[FeatureExtractor] = None,
               on_part: Optional[Callable[[int], None]] = None) -> dict:
    """Dump the tokens of every utterance of ``csv`` as split ``split`` of the store.

    Returns the split summary (``nshard == 1``) or this rank's progress. ``on_part(batch)`` is called
    after each part file is written (progress hooks; tests use it to interrupt a run). ``extractor``
    replaces the upstream the store's meta names (it must match the meta).
    """
    check_shard(nshard, rank)
    _, index_path, parts_dir = split_paths(store_dir, split)
    if overwrite:
        if nshard > 1:
            raise TokenStoreError("--overwrite with --nshard would let ranks delete each other's parts; "
                                  "remove the split once (dump --overwrite of a single rank, or delete its files)")
        remove_split(store_dir, split)  # before opening: the split being replaced may be the damaged one
    store = TokenStore(store_dir)
    utterances, lengths = read_list(csv)
    if os.path.isfile(index_path):
        return _already_done(store, split, [u.sample_id for u in utterances])

    # the store says whether its upstream runs padding-exact, so the plan is known before building it
    batching = batching.resolved(bool(store.meta.get("padding_exact", False)))
    plan = batching.plan(lengths)
    _claim_plan(parts_dir, _plan_doc(csv, split, utterances, plan, batching, store))
    todo = [b for b in range(len(plan)) if b % nshard == rank
            and _part_ids(part_path(parts_dir, b)) != [utterances[i].sample_id for i in plan[b]]]
    mine = sum(1 for b in range(len(plan)) if b % nshard == rank)
    if len(todo) < mine:
        log.info("dump %s: resuming, %d of %d batches already done", split, mine - len(todo), mine)

    if todo:
        if extractor is None:
            extractor = _build_extractor(store, device, upstream_ckpt, store.meta.get("seed", 0))
        _check_extractor(store, extractor)
        centroids = torch.from_numpy(store.centroids()).to(extractor.device)
        dtype = np.dtype(store.meta["token_dtype"])
        started, n_utts = time.perf_counter(), 0
        desc = f"dump {split}" if nshard == 1 else f"dump {split} rank {rank}/{nshard}"
        for batch in extractor.iter_batches(utterances, plan, todo, num_workers=batching.num_workers,
                                            progress=progress, desc=desc):
            labels, sqdist = assign(batch.feats, centroids)
            _write_part(part_path(parts_dir, batch.batch), [utterances[i].sample_id for i in batch.indices],
                        batch.n_frames, labels.t().cpu().numpy().astype(dtype), sqdist.double().sum(1).cpu().numpy())
            n_utts += len(batch.indices)
            if on_part is not None:
                on_part(batch.batch)
        elapsed = time.perf_counter() - started
        log.info("dump %s: %d utterances in %.1f s (%.1f utt/s)", split, n_utts, elapsed, n_utts / max(elapsed, 1e-9))
    if nshard == 1:
        return finalize_split(store.path, split)
    return {"split": split, "rank": rank, "nshard": nshard, "batches": mine, "batches_written": len(todo)}


def _already_done(store: TokenStore, split: str, sample_ids: List[str]) -> dict:
    _, index_path, parts_dir = split_paths(store.path, split)
    index = read_json(index_path)
    if [item[0] for item in index["items"]] != sample_ids:
        raise TokenStoreError(f"split {split!r} of {store.path} was dumped from another data list "
                              f"({index.get('csv')}); pass --overwrite to replace it")
    # A run killed between writing the index and tidying up leaves these to finish.
    if store.summary.get("dump", {}).get(split) != index["summary"]:
        update_summary(store.path, "dump", split, index["summary"])
    shutil.rmtree(parts_dir, ignore_errors=True)
    log.info("dump %s: already complete (%d utterances)", split, len(sample_ids))
    return index["summary"]


def finalize_split(store_dir: str, split: str, nshard: Optional[int] = None) -> dict:
    """``merge``: write ``<split>.npy`` and ``<split>.index.json`` (CSV order) from the parts of every
    planned batch, record the split's summary, and remove the parts. Returns the summary."""
    store = TokenStore(store_dir)
    array_path, index_path, parts_dir = split_paths(store.path, split)
    plan_path = os.path.join(parts_dir, PLAN)
    if not os.path.isfile(plan_path):
        if os.path.isfile(index_path):
            return read_json(index_path)["summary"]
        raise TokenStoreError(f"{store.path}: no dump of split {split!r} under way (no {plan_path}); run dump first")
    doc = read_json(plan_path)
    sample_ids, plan = doc["sample_ids"], doc["batches"]
    if doc["centroids_sha256"] != sha256_file(os.path.join(store.path, CENTROIDS)):
        raise TokenStoreError(f"{parts_dir} was dumped with other centroids (the store was refitted); "
                              "dump the split again with --overwrite")

    # Pass 1: frame counts of every utterance, and a check that every batch is there and whole.
    lengths: Dict[int, int] = {}
    missing = []
    for b, rows in enumerate(plan):
        path = part_path(parts_dir, b)
        if _part_ids(path) != [sample_ids[i] for i in rows]:
            missing.append(b)
            continue
        with np.load(path) as part:
            lengths.update(zip(rows, (int(n) for n in part["lengths"])))
    if missing:
        ranks = f"; rank(s) {sorted({b % nshard for b in missing})} of {nshard} are not done" if nshard else ""
        raise TokenStoreError(f"split {split!r}: {len(missing)} of {len(plan)} planned batches have no part yet "
                              f"(first: {missing[:5]}){ranks}. Run (or rerun) the dump ranks, then merge.")
    offsets = np.concatenate([[0], np.cumsum([lengths[i] for i in range(len(sample_ids))])]).astype(np.int64)
    total, n_layers, k = int(offsets[-1]), len(store.layers), store.n_clusters

    # Pass 2: copy every part's tokens to their CSV-order place; sums run in plan order (deterministic).
    for stale in glob.glob(os.path.join(store.path, f".{split}.npy.*.tmp")) + glob.glob(
            os.path.join(store.path, f".{split}.index.json.*.tmp")):
        os.remove(stale)  # left by a run killed while finalizing
    inertia = np.zeros(n_layers, dtype=np.float64)
    usage = np.zeros((n_layers, k), dtype=np.int64)
    with npy_writer(array_path, store.meta["token_dtype"], (total, n_layers)) as out:
        for b, rows in enumerate(plan):
            with np.load(part_path(parts_dir, b)) as part:
                tokens = part["tokens"]
                inertia += part["inertia"]
            for layer in range(n_layers):
                usage[layer] += np.bincount(tokens[:, layer].astype(np.int64), minlength=k)
            pos = 0
            for i in rows:
                n = lengths[i]
                out[offsets[i]:offsets[i] + n] = tokens[pos:pos + n]
                pos += n
    summary = {
        "layers": store.layers,
        "n_utterances": len(sample_ids),
        "frames_per_layer": [total] * n_layers,
        "clusters_used": [int((row > 0).sum()) for row in usage],
        "inertia": [float(x) for x in inertia],
        "inertia_per_frame": [float(x) / max(total, 1) for x in inertia],
        "n_batches": len(plan),
        "batching": doc["batching"],
        "csv": doc["csv"],
    }
    write_json(index_path, {
        "split": split, "csv": doc["csv"], "n_layers": n_layers, "token_dtype": store.meta["token_dtype"],
        "total_frames": total, "summary": summary,
        "items": [[sid, int(offsets[i]), int(lengths[i])] for i, sid in enumerate(sample_ids)],
    }, indent=None)  # one line: an index can hold millions of items
    update_summary(store.path, "dump", split, summary)
    shutil.rmtree(parts_dir)
    return summary
