"""Pseudo-labels: a teacher predictor file scores an unlabelled pool; its predictions become the scores of
a data list the students train on.

    python -m distilmos.compress.pseudo_label --teacher teacher.pt --pool pool/pool.csv --out pseudo.csv
        [--chunk 64] [--batch_size 16] [--device cpu]

The teacher is any predictor file (``distilmos-predict export``, any expert; a pruned one or a student
too), an ``hf://`` file or a ``peer://`` predictor (``peer://distillmos``: another package's model). The
pool is anything ``distilmos-predict score`` reads (a data list CSV, a plain list, a folder).

Resumable: files are scored ``--chunk`` at a time, and every chunk's predictions are appended to
``<out>.partial.jsonl`` (flushed and synced) before the next starts, so a killed run loses at most one
chunk and a rerun scores only the files not yet in it. A file the teacher cannot score (unreadable,
empty, too short) is recorded there with its reason, reported, left out of the list, and not retried.

Written at the end, each atomically: ``<out>`` (``sample_id,system_id,wav_path,score``, the score being
the teacher's prediction) and ``<out>.teacher.json`` (the teacher file's path and sha256, its model card's
expert and upstream, the pool, counts and the failures).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable

from tqdm import tqdm

from distilmos.compress.cli import step_parser
from distilmos.data.datalist import open_list
from distilmos.errors import ToolkitError, reports_errors
from distilmos.fileio import atomic_write


def read_pool(pool: str) -> list[dict]:
    """``[{"sample_id", "system_id", "wav_path"}]`` of a pool (data list CSV, plain list or folder)."""
    from distilmos.predictor.inputs import collect

    if pool.lower().endswith(".csv") and os.path.isfile(pool):
        base = os.path.dirname(os.path.abspath(pool))
        rows = list(csv.DictReader(open_list(pool)))
        if rows and "sample_id" in rows[0]:
            return [
                {
                    "sample_id": r["sample_id"],
                    "system_id": r.get("system_id") or "pool",
                    "wav_path": r["wav_path"] if os.path.isabs(r["wav_path"]) else os.path.join(base, r["wav_path"]),
                }
                for r in rows
            ]
    entries = collect([pool])
    return [
        {
            "sample_id": os.path.splitext(os.path.basename(e.wav_path))[0],
            "system_id": e.system_id or "pool",
            "wav_path": e.wav_path,
        }
        for e in entries
    ]


def read_partial(path: str) -> dict[str, dict]:
    """The records already written. A torn last line (a kill in the middle of a write) is cut off the
    file, so that what is appended next starts on a line of its own."""
    done: dict[str, dict] = {}
    if os.path.isfile(path):
        with open(path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[record["sample_id"]] = record
    return done


def pseudo_label(
    teacher: str,
    pool: str,
    out: str,
    *,
    chunk: int = 64,
    device: str | None = "cpu",
    batch_size: int = 16,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> dict:
    """Score ``pool`` with ``teacher`` into the data list ``out`` (see the module docstring); return the
    sidecar dict. ``on_chunk(n_scored_so_far)`` is called after each chunk is saved."""
    from distilmos.predictor import load

    rows = read_pool(pool)
    ids = [r["sample_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ToolkitError(f"{pool}: duplicate sample_id(s): {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
    partial = out + ".partial.jsonl"
    done = read_partial(partial)
    todo = [r for r in rows if r["sample_id"] not in done]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if todo:
        predictor = load(teacher, device=device, batch_size=batch_size)
        bar = tqdm(
            total=len(rows),
            initial=len(rows) - len(todo),
            desc="pseudo-label",
            unit="file",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
        )
        with open(partial, "a", encoding="utf-8") as handle:
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                results = predictor.score_files([r["wav_path"] for r in part])
                for row, result in zip(part, results):
                    record = {"sample_id": row["sample_id"], "pred": result.pred, "error": result.error}
                    handle.write(json.dumps(record) + "\n")
                    done[row["sample_id"]] = record
                handle.flush()
                os.fsync(handle.fileno())
                bar.update(len(part))
                if on_chunk:
                    on_chunk(len(done))
        bar.close()
    failed = [done[r["sample_id"]]["error"] for r in rows if done[r["sample_id"]].get("error")]
    for message in failed:
        print(f"skipped: {message}", file=sys.stderr)
    with atomic_write(out, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sample_id", "system_id", "wav_path", "score"])
        for row in rows:
            record = done[row["sample_id"]]
            if record.get("error") is None:
                writer.writerow(
                    [row["sample_id"], row["system_id"], os.path.abspath(row["wav_path"]), f"{record['pred']:.6f}"]
                )
    from distilmos.predictor.sources import identity, model_card

    card, who = model_card(teacher), identity(teacher)  # any model reference: a file, hf:// or peer://
    sidecar = {
        "teacher": os.path.abspath(teacher) if who["ref"] == who.get("path") else who["ref"],
        "teacher_sha256": who.get("sha256"),
        "teacher_expert": (card.get("downstream") or {}).get("expert") or card.get("peer"),
        "teacher_upstream": (card.get("upstream") or {}).get("name"),
        "pool": os.path.abspath(pool),
        "labelled": len(rows) - len(failed),
        "failed": failed,
    }
    with atomic_write(out + ".teacher.json") as handle:
        json.dump(sidecar, handle, indent=2)
    return sidecar


@reports_errors
def main(argv=None) -> int:
    parser = step_parser("pseudo_label", __doc__)
    parser.add_argument(
        "--teacher", required=True, help="a predictor file (distilmos-predict export), hf:// file or peer:// predictor"
    )
    parser.add_argument("--pool", required=True, help="the unlabelled pool: a data list CSV, a list or a folder")
    parser.add_argument("--out", required=True, help="the pseudo-labelled data list to write")
    parser.add_argument("--chunk", type=int, default=64, help="files scored between two saves")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    sidecar = pseudo_label(
        args.teacher, args.pool, args.out, chunk=args.chunk, device=args.device, batch_size=args.batch_size
    )
    print(f"{sidecar['labelled']} pseudo-labels -> {args.out} ({len(sidecar['failed'])} files skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
