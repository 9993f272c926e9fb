#!/usr/bin/env bash
# The k sweep of the paper's Fig. 2: DistilMOS with WavLM Base and k in {50, 100, 150, 200, 250, 300}.
#
#   ./run_ksweep.sh --bvcc_root /corpora/main --somos_root /corpora/somos [--seeds "0 1 2"] \
#       [--baseline_variants "ssl_mos no_token mse_distill"]
#
# Calls run.sh --variant distilmos --n_clusters k once per (k, seed), into the experiment folders
# run.sh and run_table1.sh name the same way (the k=200 point is Table 1's WavLM Base DistilMOS run),
# one token store per k. --baseline_variants trains those variants too (same upstream and seeds) and
# --baselines adds finished experiment folders; both become horizontal reference lines, as the paper
# compares every k with the baseline and the ablations. Then local/plot_ksweep.py writes <out>.png
# (three panels: BVCC utterance SRCC, BVCC system SRCC, SOMOS utterance SRCC against k) and <out>.csv.
# Options that are not listed below go to run.sh unchanged. --dry_run prints the commands.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/local/names.sh"

bvcc_root=
somos_root=
upstream=wavlm_base
upstream_ckpt=
ks="50 100 150 200 250 300"
seeds="0"
baseline_variants=
baselines=
device=cuda
ngpu=1
total_steps=10000
exproot="${recipe}/exp"
out=                       # output prefix; default: <exproot>/ksweep
dry_run=false

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; awk '/^usage\(\)/ { exit } /^[a-z_0-9]+=/ && !/^recipe=/ { print "  --" $0 }' "$0"; exit 1; }
passthrough=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage ;;
        --*=*) name="${1%%=*}"; name="${name#--}"; value="${1#*=}"; shift ;;
        --*) name="${1#--}"; [ $# -ge 2 ] || { echo "option --${name} needs a value" >&2; exit 1; }; value="$2"; shift 2 ;;
        *) echo "unexpected argument: $1" >&2; usage ;;
    esac
    case "${name}" in
        bvcc_root|somos_root|exproot|out) [ -z "${value}" ] || value="$(abspath "${value}")"; printf -v "${name}" '%s' "${value}" ;;
        upstream_ckpt) [ -e "${value}" ] && value="$(abspath "${value}")"; upstream_ckpt="${value}" ;;
        baselines)
            baselines=
            for dir in ${value}; do baselines+=" $(abspath "${dir}")"; done ;;
        upstream|ks|seeds|baseline_variants|device|ngpu|total_steps|dry_run) printf -v "${name}" '%s' "${value}" ;;
        variant|n_clusters|seed|expdir) echo "--${name} is set per run here (see --ks, --seeds)" >&2; exit 1 ;;
        *) passthrough+=("--${name}" "${value}") ;;
    esac
done
case "${dry_run}" in true|false) ;; *) echo "--dry_run takes true or false" >&2; exit 1 ;; esac

run() {
    if "${dry_run}"; then
        printf '%q ' "$@"; echo
    else
        "$@"
    fi
}

tag="$(upstream_tag "${upstream}" "${upstream_ckpt}")"
out="${out:-${exproot}/ksweep}"
ckpt_args=()
[ -n "${upstream_ckpt}" ] && ckpt_args=(--upstream_ckpt "${upstream_ckpt}")
common=(--bvcc_root "${bvcc_root}" --somos_root "${somos_root}" --upstream "${upstream}" "${ckpt_args[@]}"
        --device "${device}" --ngpu "${ngpu}" --total_steps "${total_steps}")

expdirs=()
for k in ${ks}; do
    for seed in ${seeds}; do
        expdir="${exproot}/$(run_name distilmos "${tag}" "${k}" "${seed}")"
        "${dry_run}" || echo "=== distilmos ${tag} k=${k} seed ${seed} -> ${expdir}"
        run "${recipe}/run.sh" "${common[@]}" --variant distilmos --n_clusters "${k}" --seed "${seed}" \
            --expdir "${expdir}" "${passthrough[@]}"
        expdirs+=("${expdir}")
    done
done

reference=(${baselines})
for variant in ${baseline_variants}; do
    [ "${variant}" != distilmos ] || { echo "--baseline_variants: distilmos is the sweep itself" >&2; exit 1; }
    for seed in ${seeds}; do
        expdir="${exproot}/$(run_name "${variant}" "${tag}" 0 "${seed}")"
        "${dry_run}" || echo "=== ${variant} ${tag} seed ${seed} -> ${expdir}"
        run "${recipe}/run.sh" "${common[@]}" --variant "${variant}" --seed "${seed}" --expdir "${expdir}" \
            "${passthrough[@]}"
        reference+=("${expdir}")
    done
done

run python "${recipe}/local/plot_ksweep.py" --expdirs "${expdirs[@]}" --baselines "${reference[@]}" --out "${out}"
