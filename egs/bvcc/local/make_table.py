#!/usr/bin/env python
"""Table 1 in the paper's shape: our BVCC test and SOMOS zero-shot metrics beside the paper's.

    python local/make_table.py --expdirs exp/*/ --out exp/table1

Each experiment folder holds ``info.json`` (written by run.sh: upstream, variant, seed) and
``metrics_test.json`` / ``metrics_somos_test.json``. Runs of the same upstream and variant (several seeds)
are averaged. Writes ``<out>.md`` (cells "ours (paper, ours - paper)") and ``<out>.csv`` (one row per
backbone, model and metric) and prints the Markdown table.
"""

import argparse
import json
import os
import statistics
from collections import defaultdict

from paper_table1 import BACKBONES, COLUMNS, PAPER_TABLE1  # beside this script
from table_files import write_and_print_table

from distilmos import registry

SOURCES = {"bvcc_utt": ("test", "utt"), "bvcc_sys": ("test", "sys"), "somos_utt": ("somos_test", "utt")}
HUB_TO_BACKBONE = {hub: name for name, hub in BACKBONES.items()}


def read_run(expdir):
    """``(upstream, variant, {column: value})`` of one experiment folder (missing metrics are left out)."""
    with open(os.path.join(expdir, "info.json")) as handle:
        info = json.load(handle)
    values = {}
    for column in COLUMNS:
        prefix, metric = column.rsplit("_", 1)
        split, level = SOURCES[prefix]
        path = os.path.join(expdir, f"metrics_{split}.json")
        if os.path.isfile(path):
            with open(path) as handle:
                value = json.load(handle).get(f"{level}_{metric}")
            if value is not None:
                values[column] = float(value)
    # a run with a rating option (run.sh --listener/--uncertainty) is a row of its own beside the plain one
    options = "".join(f"+{option}" for option in ("listener", "uncertainty") if info.get(option))
    return info["upstream"], info["variant"] + options, values


def run_label(variant: str) -> str:
    """The table label of a run's variant, with its rating options: ``distilmos+listener`` ->
    ``DistilMOS (ours) + listener``."""
    name, *options = variant.split("+")
    return " + ".join([registry.label(name), *options])


def collect(expdirs):
    """``{(backbone, model): {column: [values over seeds]}}``."""
    runs = defaultdict(lambda: defaultdict(list))
    for expdir in expdirs:
        upstream, variant, values = read_run(expdir)
        key = (HUB_TO_BACKBONE.get(upstream, upstream), run_label(variant))
        for column, value in values.items():
            runs[key][column].append(value)
    return runs


def rows(runs):
    """Long-format rows with ours (mean, std, n), paper and difference: the paper's backbones in its order,
    then any other backbone; within a backbone, the models in the order they are registered."""
    backbones = list(BACKBONES) + sorted({b for b, _ in runs} - set(BACKBONES))
    labels = [registry.label(v) for v in registry.VARIANTS]
    labels += sorted({m for _, m in runs} - set(labels))
    keys = [(b, m) for b in backbones for m in labels if (b, m) in runs]
    out = []
    for key in keys:
        for column in COLUMNS:
            values = runs[key].get(column, [])
            ours = statistics.fmean(values) if values else None
            paper = PAPER_TABLE1.get(key, {}).get(column)
            out.append(
                {
                    "backbone": key[0],
                    "model": key[1],
                    "metric": column,
                    "ours": ours,
                    "ours_std": statistics.stdev(values) if len(values) > 1 else None,
                    "n_runs": len(values),
                    "paper": paper,
                    "diff": ours - paper if ours is not None and paper is not None else None,
                }
            )
    return out


def _cell(row):
    if row["ours"] is None:
        return "–" if row["paper"] is None else f"– ({row['paper']:.3f})"
    ours = f"{row['ours']:.3f}" + (f"±{row['ours_std']:.3f}" if row["ours_std"] is not None else "")
    if row["paper"] is None:
        return ours
    return f"{ours} ({row['paper']:.3f}, {row['diff']:+.3f})"


def markdown(table_rows):
    """The table in the paper's shape; each cell: ours (paper, difference)."""
    groups = ["BVCC utterance", "BVCC system", "SOMOS utterance"]
    metrics = ["LCC", "SRCC", "KTAU", "MSE"]
    header = "| SSL backbone | Model | " + " | ".join(f"{g} {m}" for g in groups for m in metrics) + " |"
    lines = [header, "|" + "---|" * (2 + len(groups) * len(metrics))]
    by_key = defaultdict(dict)
    for row in table_rows:
        by_key[(row["backbone"], row["model"])][row["metric"]] = row
    for (backbone, model), cells in by_key.items():
        n = max(c["n_runs"] for c in cells.values())
        label = f"{model} (n={n})" if n > 1 else model
        lines.append(f"| {backbone} | {label} | " + " | ".join(_cell(cells[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n\nCells: ours (paper, ours − paper); ± is the standard deviation over runs.\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expdirs", nargs="+", required=True, help="experiment folders (several seeds are averaged)")
    parser.add_argument("--out", required=True, help="output prefix: writes <out>.md and <out>.csv")
    args = parser.parse_args(argv)
    table_rows = rows(collect(args.expdirs))
    write_and_print_table(args.out, markdown(table_rows), table_rows, "metric")


if __name__ == "__main__":
    main()
