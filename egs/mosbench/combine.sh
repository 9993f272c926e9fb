#!/usr/bin/env bash
# One table of several finished benchmarks (the --outdir of each run.sh), one row per benchmark: the metric
# per test set and the means over the sets, printed and written to <out>.md and <out>.csv (every metric).
#
#   ./combine.sh --out exp/upstreams wavlm_base=exp/wavlm_base hubert_base=exp/hubert_base [--metric sys_SRCC]
#
# Each argument after the options is LABEL=OUTDIR: the row's label and a finished run.sh's --outdir.
# egs/bvcc/run_upstreams.sh ends with it.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/../utils/lib.sh"

out=                       # output prefix: writes <out>.md and <out>.csv (required)
metric=utt_SRCC            # the per-set column: {utt,sys}_{MSE,LCC,SRCC,KTAU}
path_options="out"
. "${recipe}/../utils/parse_options.sh"

[ -n "${out}" ] || { echo "combine.sh: --out is required" >&2; exit 1; }
[ $# -gt 0 ] || { echo "combine.sh: give LABEL=OUTDIR for at least one finished run.sh" >&2; exit 1; }
python "${recipe}/local/benchmark.py" combine --runs "$@" --out "${out}" --metric "${metric}"
