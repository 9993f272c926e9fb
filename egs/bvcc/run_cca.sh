#!/usr/bin/env bash
# The representation analysis of the paper's Fig. 3: PWCCA between each model (SSL-MOS, w/o token
# prediction, MSE distillation, DistilMOS and a randomly initialised DistilMOS) and every layer of the
# pretrained upstream, on BVCC test, with WavLM Base as in the paper.
#
#   ./run_cca.sh [--upstream wavlm_base] [--seed 0] [--n_clusters 200] [--device cuda]
#
# Analyses the finished runs that run_table1.sh / run.sh left in <exproot> (named by local/names.sh),
# training none; then local/cca_analysis.py writes <exproot>/cca_<upstream>_seed<seed>.{csv,png}.
# Run the four variants first (run_table1.sh --upstreams wavlm_base, or run.sh per variant).
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/local/names.sh"

upstream=wavlm_base
upstream_ckpt=
variants="ssl_mos no_token mse_distill distilmos"
n_clusters=200
seed=0
device=cuda
exproot="${recipe}/exp"
datadir="${recipe}/data"
split=test

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; awk '/^usage\(\)/ { exit } /^[a-z_0-9]+=/ && !/^recipe=/ { print "  --" $0 }' "$0"; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage ;;
        --*) name="${1#--}"; [ $# -ge 2 ] || { echo "option --${name} needs a value" >&2; exit 1; }; value="$2"; shift 2 ;;
        *) echo "unexpected argument: $1" >&2; usage ;;
    esac
    case "${name}" in
        exproot|datadir|upstream_ckpt) [ -z "${value}" ] || value="$(abspath "${value}")"; printf -v "${name}" '%s' "${value}" ;;
        upstream|variants|n_clusters|seed|device|split) printf -v "${name}" '%s' "${value}" ;;
        *) echo "unknown option --${name}" >&2; usage ;;
    esac
done

tag="$(upstream_tag "${upstream}" "${upstream_ckpt}")"
expdirs=()
for variant in ${variants}; do
    expdir="${exproot}/$(run_name "${variant}" "${tag}" "${n_clusters}" "${seed}")"
    [ -f "${expdir}/best-states-val.ckpt" ] || { echo "no trained ${variant} run at ${expdir}" >&2; exit 1; }
    expdirs+=("${expdir}")
done
python "${recipe}/local/cca_analysis.py" --expdirs "${expdirs[@]}" --csv "${datadir}/bvcc/${split}.csv" \
    --out "${exproot}/cca_${tag}_seed${seed}" --device "${device}" --seed "${seed}"
