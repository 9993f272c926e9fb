"""Writing one split of a frame store (tokens or cached features): resumable, shardable, byte-exact.

How a split is built::

    <split>.parts/plan.json       the batch plan (CSV order of ids, the batches, the batching options,
                                  what the rows are made with): identical for every run and rank
    <split>.parts/b000017.npz     the rows of planned batch 17, written atomically when it is done
    <split>.npy, <split>.index.json   written by the final step, in CSV order; the parts are removed

A killed run leaves whole part files only; a rerun skips the batches whose part is there and redoes the
rest. Because batch composition is fixed by the plan, the final files are byte-identical to those of an
uninterrupted run.

Sharding: rank ``R`` of ``N`` dumps the planned batches ``b % N == R`` into the same parts folder (a
shared file system); :func:`finalize_rows` (``merge``) then writes the split. A single run (``N = 1``)
finalizes by itself.

One run per split (per rank of a sharded dump): :func:`split_lock` refuses a second dump of the same split
into the same store while the first runs, naming it (:mod:`distilmos.locks`).

What a row is comes from a :class:`RowCodec`: token ids per layer (:mod:`upstream_tokens.dump`), or the
hidden states of the stored layers (:mod:`upstream_tokens.feature_cache`).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from distilmos.data.stores import FrameStore, check_split_name, read_json, split_paths
from distilmos.fileio import atomic_write
from distilmos.locks import RunLock

from .extract import FeatureExtractor, FrameLaw, RunOptions, check_shard, read_list
from .store import npy_writer, remove_split, update_summary, write_json

log = logging.getLogger(__name__)

PLAN = "plan.json"


@dataclass
class RowCodec:
    """How the frames of a batch become stored rows.

    ``encode(feats [n_layers, frames, dim])`` returns ``(rows [frames, *row_shape] of dtype, stats)``:
    ``stats`` a float64 vector summed over the split (e.g. k-means inertia per layer; empty when none).
    """

    dtype: np.dtype
    row_shape: tuple[int, ...]
    encode: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]


def split_lock(store_dir: str, split: str, nshard: int = 1, rank: int = 0):
    """The lock of one run writing ``split`` into a store (of rank ``rank`` when sharded: the ranks of one
    dump share the split and must not refuse each other); a context manager. A store folder that does not
    exist has nothing to lock: opening it fails with the store's own error."""
    if not os.path.isdir(store_dir):
        return contextlib.nullcontext()
    check_shard(nshard, rank)
    check_split_name(split)
    name = f".{split}.lock" if nshard == 1 else f".{split}.rank{rank}-of-{nshard}.lock"
    what = f"split {split!r} of {store_dir}" + (f" (rank {rank} of {nshard})" if nshard > 1 else "")
    return RunLock(os.path.join(store_dir, name), what)


def part_path(parts_dir: str, batch: int) -> str:
    return os.path.join(parts_dir, f"b{batch:06d}.npz")


def part_ids(path: str) -> list[str] | None:
    """The sample ids a part file holds, or None when it cannot be read."""
    try:
        with np.load(path) as part:
            return [str(x) for x in part["ids"]]
    except Exception:  # a part is written atomically, so this is a foreign or damaged file: redo it
        return None


def _write_part(path: str, ids: list[str], lengths: list[int], rows: np.ndarray, stats: np.ndarray) -> None:
    with atomic_write(path, "wb") as handle:
        np.savez(
            handle,
            ids=np.array(ids, dtype=str),
            lengths=np.asarray(lengths, dtype=np.int64),
            rows=rows,
            stats=np.asarray(stats, dtype=np.float64),
        )


def _claim_plan(store: FrameStore, parts_dir: str, doc: dict) -> None:
    """Record the plan, or check it against the one a started dump recorded."""
    path = os.path.join(parts_dir, PLAN)
    if not os.path.isfile(path):
        os.makedirs(parts_dir, exist_ok=True)
        write_json(path, doc)
    recorded = read_json(path)  # re-read: another rank may have written it at the same moment
    if recorded != doc:
        fields = sorted(k for k in set(recorded) | set(doc) if recorded.get(k) != doc.get(k))
        raise store.error(
            f"{parts_dir} holds a dump started with another plan (differs in {fields}: another data list, "
            "batching options or store contents). Finish it with the same options, or pass --overwrite to "
            "start over."
        )


def already_done(store: FrameStore, split: str, sample_ids: list[str]) -> dict:
    """The summary of a complete split dumped from the same list (tidying what a killed run left)."""
    _, index_path, parts_dir = split_paths(store.path, split)
    index = read_json(index_path)
    if [item[0] for item in index["items"]] != sample_ids:
        raise store.error(
            f"split {split!r} of {store.path} was dumped from another data list "
            f"({index.get('csv')}); pass --overwrite to replace it"
        )
    # A run killed between writing the index and tidying up leaves these to finish.
    if store.summary.get("dump", {}).get(split) != index["summary"]:
        update_summary(store.path, "dump", split, index["summary"])
    shutil.rmtree(parts_dir, ignore_errors=True)
    log.info("dump %s: already complete (%d utterances)", split, len(sample_ids))
    return index["summary"]


def write_split(
    csv: str,
    store_class: type[FrameStore],
    store_dir: str,
    split: str,
    run: RunOptions,
    *,
    get_extractor: Callable[[FrameStore], FeatureExtractor],
    codec_of: Callable[[FrameStore, FeatureExtractor], RowCodec],
    source: Callable[[FrameStore], dict],
    finalize: Callable[[str, str], dict],
    check: Callable[[FrameStore, list[int]], None] | None = None,
    on_part: Callable[[int], None] | None = None,
) -> dict:
    """Dump every utterance of ``csv`` as split ``split`` of the store at ``store_dir`` (tokens or features,
    see the module docstring). Returns the split's summary (``nshard == 1``: ``finalize(store_dir, split)``)
    or this rank's progress.

    Under the split's lock, ``--overwrite`` removes the split before the store is opened (the split being
    replaced may be the damaged one); a split already complete from the same list is only tidied.
    ``check(store, lengths)`` may refuse before any forward (room on the disk). The upstream is built by
    ``get_extractor(store)`` only when a batch is left to do; ``codec_of(store, extractor)`` says what a row
    is, ``source(store)`` what the rows are made with (it is part of the plan, so a dump resumed with
    another source is refused). ``on_part(batch)`` is called after each part file is written (progress
    hooks; tests use it to interrupt a run).
    """
    with split_lock(store_dir, split, run.nshard, run.rank):  # before --overwrite removes anything
        if run.overwrite:
            if run.nshard > 1:
                raise store_class.error(
                    "--overwrite with --nshard would let ranks delete each other's parts; "
                    "remove the split once (a single rank with --overwrite, or delete its files)"
                )
            remove_split(store_dir, split)
        store = store_class(store_dir)
        utterances, lengths = read_list(csv, FrameLaw(**store.meta["frame_law"]))
        if os.path.isfile(split_paths(store.path, split)[1]):
            return already_done(store, split, [u.sample_id for u in utterances])
        if check is not None:
            check(store, lengths)
        # the store says whether its upstream runs padding-exact, so the plan is known before building it
        batching = run.batching.resolved(bool(store.meta.get("padding_exact", False)))
        plan = batching.plan(lengths)
        _, _, parts_dir = split_paths(store.path, split)
        _claim_plan(
            store,
            parts_dir,
            {
                "split": split,
                "csv": os.path.abspath(csv),
                "sample_ids": [u.sample_id for u in utterances],
                "batches": [list(map(int, b)) for b in plan],
                "batching": batching.as_dict(),
                **source(store),
            },
        )
        mine = run.mine(range(len(plan)))
        todo = [b for b in mine if part_ids(part_path(parts_dir, b)) != [utterances[i].sample_id for i in plan[b]]]
        if len(todo) < len(mine):
            log.info("dump %s: resuming, %d of %d batches already done", split, len(mine) - len(todo), len(mine))
        if todo:
            extractor = get_extractor(store)
            _write_parts(
                parts_dir, split, utterances, plan, todo, extractor, codec_of(store, extractor), batching, run, on_part
            )
        if run.nshard == 1:
            return finalize(store.path, split)
        return {
            "split": split,
            "rank": run.rank,
            "nshard": run.nshard,
            "batches": len(mine),
            "batches_written": len(todo),
        }


def _write_parts(parts_dir, split, utterances, plan, todo, extractor, codec, batching, run, on_part) -> None:
    """Forward the planned batches ``todo`` and write a part file of each."""
    started, n_utts = time.perf_counter(), 0
    for batch in extractor.iter_batches(
        utterances, plan, todo, num_workers=batching.num_workers, progress=run.progress, desc=run.desc(f"dump {split}")
    ):
        rows, stats = codec.encode(batch.feats)
        _write_part(
            part_path(parts_dir, batch.batch),
            [utterances[i].sample_id for i in batch.indices],
            batch.n_frames,
            rows,
            stats,
        )
        n_utts += len(batch.indices)
        if on_part is not None:
            on_part(batch.batch)
    elapsed = time.perf_counter() - started
    log.info("dump %s: %d utterances in %.1f s (%.1f utt/s)", split, n_utts, elapsed, n_utts / max(elapsed, 1e-9))


def read_plan(store: FrameStore, split: str) -> dict | None:
    """The plan of a dump under way, or None when there is none."""
    _, _, parts_dir = split_paths(store.path, split)
    path = os.path.join(parts_dir, PLAN)
    return read_json(path) if os.path.isfile(path) else None


def finalize_rows(
    store: FrameStore,
    split: str,
    dtype,
    row_shape: tuple[int, ...],
    summarize: Callable[[dict], dict],
    nshard: int | None = None,
    on_part: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> dict:
    """``merge``: write ``<split>.npy`` and ``<split>.index.json`` (CSV order) from the parts of every
    planned batch, record the split's summary, and remove the parts. Returns the summary.

    ``on_part(rows, stats)`` sees every part in plan order (for statistics); ``summarize(base)`` turns the
    base summary (utterances, frames, stats summed, batching) into the split's summary.
    """
    array_path, index_path, parts_dir = split_paths(store.path, split)
    doc = read_plan(store, split)
    if doc is None:
        if os.path.isfile(index_path):
            return read_json(index_path)["summary"]
        raise store.error(
            f"{store.path}: no dump of split {split!r} under way (no {os.path.join(parts_dir, PLAN)}); run dump first"
        )
    sample_ids, plan = doc["sample_ids"], doc["batches"]

    # Pass 1: frame counts of every utterance, and a check that every batch is there and whole.
    lengths: dict[int, int] = {}
    missing = []
    for b, rows in enumerate(plan):
        path = part_path(parts_dir, b)
        if part_ids(path) != [sample_ids[i] for i in rows]:
            missing.append(b)
            continue
        with np.load(path) as part:
            lengths.update(zip(rows, (int(n) for n in part["lengths"])))
    if missing:
        ranks = f"; rank(s) {sorted({b % nshard for b in missing})} of {nshard} are not done" if nshard else ""
        raise store.error(
            f"split {split!r}: {len(missing)} of {len(plan)} planned batches have no part yet "
            f"(first: {missing[:5]}){ranks}. Run (or rerun) the dump ranks, then merge."
        )
    offsets = np.concatenate([[0], np.cumsum([lengths[i] for i in range(len(sample_ids))])]).astype(np.int64)
    total = int(offsets[-1])

    # Pass 2: copy every part's rows to their CSV-order place; sums run in plan order (deterministic).
    for stale in glob.glob(os.path.join(store.path, f".{split}.npy.*.tmp")) + glob.glob(
        os.path.join(store.path, f".{split}.index.json.*.tmp")
    ):
        os.remove(stale)  # left by a run killed while finalizing
    stats_sum = None
    with npy_writer(array_path, dtype, (total, *row_shape)) as out:
        for b, rows in enumerate(plan):
            with np.load(part_path(parts_dir, b)) as part:
                block, stats = part["rows"], part["stats"]
            stats_sum = stats.copy() if stats_sum is None else stats_sum + stats
            if on_part is not None:
                on_part(block, stats)
            pos = 0
            for i in rows:
                n = lengths[i]
                out[offsets[i] : offsets[i] + n] = block[pos : pos + n]
                pos += n
    summary = summarize(
        {
            "layers": store.layers,
            "n_utterances": len(sample_ids),
            "total_frames": total,
            "stats": [] if stats_sum is None else [float(x) for x in stats_sum],
            "n_batches": len(plan),
            "batching": doc["batching"],
            "csv": doc["csv"],
        }
    )
    write_json(
        index_path,
        {
            "split": split,
            "csv": doc["csv"],
            "row_shape": list(row_shape),
            "dtype": np.dtype(dtype).name,
            "total_frames": total,
            "summary": summary,
            "items": [[sid, int(offsets[i]), int(lengths[i])] for i, sid in enumerate(sample_ids)],
        },
        indent=None,
    )  # one line: an index can hold millions of items
    update_summary(store.path, "dump", split, summary)
    shutil.rmtree(parts_dir)
    return summary
