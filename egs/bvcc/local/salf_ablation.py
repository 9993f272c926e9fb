#!/usr/bin/env python
"""SALF-MOS's ablation table (run_salf_ablation.sh calls it): the paper's Table III (inputs) and Fig. 5
(depths) beside ours.

    python local/salf_ablation.py --runs wav2vec2_base_960:4:exp/A lfcc:4:exp/B wav2vec2_base_960:2:exp/C ... \
        --ssl wav2vec2_base_960 --embedding ge2e_dvector --out exp/salf_ablation

Each run is ``UPSTREAM_TAG:DEPTH:EXPDIR``; an experiment folder holds ``info.json`` (run.sh: upstream, seed,
BVCC split), ``metrics_test.json`` and ``best-states-val.ckpt`` (for the head's parameter count). Runs of
the same input and depth (several seeds) are averaged. ``--ssl`` names the row that stands for the paper's
"wav2vec" (its depth sweep is Fig. 5's), ``--embedding`` the one that stands for its X-vector; ``lfcc`` and
``mfcc`` are its LFCC and MFCC. Writes ``<out>.md`` and ``<out>.csv`` and prints the Markdown.

The paper's numbers (Agrawal et al., 2025, Table III): BVCC test MSE 0.144 on wav2vec features, 0.43 on
LFCC, 0.56 on MFCC, 0.48 on X-vectors, all on its random 8:1:1 split of BVCC, at depth 4 (read as an
utterance-level MSE: the column stands beside ours). Fig. 5's depths are a plot whose values are not
quoted; the depth table says which depth it found best (4).
"""

import argparse
import math
import os
import statistics
from collections import defaultdict

from table_files import AblationError, read_json, write_and_print_table

#: Table III of the paper: input -> BVCC test MSE (random 8:1:1 split, depth 4)
PAPER_TABLE3 = {"wav2vec": 0.144, "LFCC": 0.43, "MFCC": 0.56, "X-vector": 0.48}
PAPER_SPLIT = "random 8:1:1"
PAPER_DEPTH = 4
METRICS = ["utt_MSE", "utt_LCC", "utt_SRCC", "utt_KTAU", "sys_MSE", "sys_SRCC"]


def parse_run(spec: str):
    """``(upstream tag, depth, expdir)`` of ``TAG:DEPTH:EXPDIR``."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        raise AblationError(f"--runs {spec!r}: expected UPSTREAM_TAG:DEPTH:EXPDIR")
    return parts[0], int(parts[1]), parts[2]


def split_name(info: dict) -> str:
    """How a run's BVCC lists were made, from its ``info.json`` (runs from before the option: official)."""
    split = info.get("split", "official")
    return "official" if split == "official" else f"{split} (seed {info.get('split_seed', 0)})"


def head_parameters(expdir: str):
    """Parameters of the trained SALF-MOS head (from its checkpoint), or None without one."""
    path = os.path.join(expdir, "best-states-val.ckpt")
    if not os.path.isfile(path):
        return None
    import torch

    from distilmos.fileio import allow_s3prl_checkpoints
    from distilmos.models.salf_mos import SALFMOSModel

    allow_s3prl_checkpoints()  # the runner's checkpoints hold its argparse.Namespace
    downstream = torch.load(path, map_location="cpu", weights_only=True)["Downstream"]
    state = {k[len("model.") :]: v for k, v in downstream.items() if k.startswith("model.")}
    model = SALFMOSModel(**SALFMOSModel.kwargs_from_state(state))
    return sum(p.numel() for p in model.parameters())


def read_run(expdir: str) -> dict:
    """The table's values of one experiment folder."""
    info = read_json(os.path.join(expdir, "info.json"))
    test = read_json(os.path.join(expdir, "metrics_test.json"))
    return {
        "values": {m: test.get(m) for m in METRICS},
        "split": split_name(info),
        "parameters": head_parameters(expdir),
    }


def label(tag: str, ssl: str, embedding: str) -> str:
    """The paper's name of an input row, or the upstream tag of a row the paper does not have."""
    if tag == ssl:
        return "wav2vec"
    if tag == embedding:
        return "X-vector"
    return {"lfcc": "LFCC", "mfcc": "MFCC"}.get(tag, tag)


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(values) if values else None


def collect(specs, ssl: str, embedding: str = ""):
    """Rows, one per (input, depth) averaged over seeds: Table III's inputs in the paper's order, then any
    other input, each at the paper's depth; then the depth sweep of the SSL input."""
    groups = defaultdict(list)
    for spec in specs:
        tag, depth, expdir = parse_run(spec)
        groups[(tag, depth)].append(read_run(expdir))
    order = list(PAPER_TABLE3)
    rows = []
    for (tag, depth), members in groups.items():
        name = label(tag, ssl, embedding)
        splits = sorted({m["split"] for m in members})
        if len(splits) > 1:
            raise AblationError(
                f"{name} at depth {depth}: runs on different BVCC splits {splits}; average runs of one split"
            )
        row = {
            "table": "inputs" if depth == PAPER_DEPTH else "depths",
            "input": name,
            "upstream": tag,
            "depth": depth,
            "parameters": members[0]["parameters"],
            "split": splits[0],
            "n_runs": len(members),
        }
        row.update({m: _mean([r["values"][m] for r in members]) for m in METRICS})
        row["paper_MSE"] = PAPER_TABLE3.get(name) if depth == PAPER_DEPTH else None
        rows.append(row)
    inputs = sorted(
        (r for r in rows if r["table"] == "inputs"),
        key=lambda r: (order.index(r["input"]) if r["input"] in order else len(order), r["input"]),
    )
    depths = sorted((r for r in rows if r["upstream"] == ssl), key=lambda r: r["depth"])
    depths = [dict(r, table="depths") for r in depths]
    others = [r for r in rows if r["table"] == "depths" and r["upstream"] != ssl]
    return inputs + depths + others


def _num(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(rows) -> str:
    """The inputs table (Table III) and the depth table (Fig. 5)."""
    head = "| utt MSE | utt LCC | utt SRCC | utt KTAU | sys MSE | sys SRCC |"
    cells = lambda r: " | ".join(_num(r[m]) for m in METRICS)  # noqa: E731
    n = lambda r: f" (n={r['n_runs']})" if r["n_runs"] > 1 else ""  # noqa: E731
    lines = [
        f"SALF-MOS inputs (the paper's Table III; depth {PAPER_DEPTH}). Ours: BVCC test, split as listed; "
        f"paper: BVCC test MSE, {PAPER_SPLIT} split.",
        "",
        "| input | upstream | head parameters | split " + head + " paper MSE |",
        "|---|---|---|---" + "|---" * len(METRICS) + "|---|",
    ]
    for r in (r for r in rows if r["table"] == "inputs"):
        params = "–" if r["parameters"] is None else f"{r['parameters']:,}"
        lines.append(
            f"| {r['input']}{n(r)} | {r['upstream']} | {params} | {r['split']} | {cells(r)} | {_num(r['paper_MSE'])} |"
        )
    depth_rows = [r for r in rows if r["table"] == "depths"]
    if depth_rows:
        lines += [
            "",
            f"SALF-MOS depth (the paper's Fig. 5: best at depth {PAPER_DEPTH}).",
            "",
            "| input | depth | head parameters | split " + head,
            "|---|---|---|---" + "|---" * len(METRICS) + "|",
        ]
        for r in depth_rows:
            params = "–" if r["parameters"] is None else f"{r['parameters']:,}"
            lines.append(f"| {r['input']}{n(r)} | {r['depth']} | {params} | {r['split']} | {cells(r)} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="UPSTREAM_TAG:DEPTH:EXPDIR of every run")
    parser.add_argument("--ssl", required=True, help="the upstream tag of the paper's wav2vec row")
    parser.add_argument("--embedding", default="", help="the upstream tag of the paper's X-vector row")
    parser.add_argument("--out", required=True, help="output prefix: writes <out>.md and <out>.csv")
    args = parser.parse_args(argv)
    try:
        rows = collect(args.runs, args.ssl, args.embedding)
    except AblationError as exc:
        parser.exit(2, f"error: {exc}\n")
    write_and_print_table(args.out, markdown(rows), rows, "input")


if __name__ == "__main__":
    main()
