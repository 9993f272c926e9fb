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
. "${recipe}/../utils/lib.sh"
. "${recipe}/local/sweep_options.sh"  # the run names; --bvcc_root, --somos_root, --device, --exproot, --dry_run

upstream=wavlm_base        # the upstream of the sweep (the paper: WavLM Base)
upstream_ckpt=             # its checkpoint, for a *_local upstream
ks="50 100 150 200 250 300"  # the values of k
seeds="0"                  # training seeds; the plot averages them
baseline_variants=         # variants to train as reference lines (e.g. "ssl_mos no_token mse_distill")
baselines=                 # finished experiment folders as more reference lines
ngpu=1                     # processes per run (torchrun)
total_steps=10000          # training steps per run
out=                       # output prefix; default: <exproot>/ksweep
path_options+=" out"
file_options="upstream_ckpt"
. "${recipe}/../utils/parse_options.sh"
refuse_passthrough "see --ks, --seeds" variant n_clusters seed expdir
dirs=
for dir in ${baselines}; do dirs+=" $(abspath "${dir}")"; done
baselines="${dirs}"

use_upstream "${upstream}=${upstream_ckpt}"
out="${out:-${exproot}/ksweep}"
common=(--bvcc_root "${bvcc_root}" --somos_root "${somos_root}" "${upstream_args[@]}"
        --device "${device}" --ngpu "${ngpu}" --total_steps "${total_steps}")

expdirs=()
for k in ${ks}; do
    for seed in ${seeds}; do
        expdir="${exproot}/$(run_name distilmos "${tag}" "${k}" "${seed}")"
        sweep_run "distilmos ${tag} k=${k} seed ${seed} -> ${expdir}" "${recipe}/run.sh" "${common[@]}" \
            --variant distilmos --n_clusters "${k}" --seed "${seed}" --expdir "${expdir}"
        expdirs+=("${expdir}")
    done
done

reference=(${baselines})
for variant in ${baseline_variants}; do
    [ "${variant}" != distilmos ] || { echo "--baseline_variants: distilmos is the sweep itself" >&2; exit 1; }
    for seed in ${seeds}; do
        expdir="${exproot}/$(run_name "${variant}" "${tag}" 0 "${seed}")"
        sweep_run "${variant} ${tag} seed ${seed} -> ${expdir}" "${recipe}/run.sh" "${common[@]}" \
            --variant "${variant}" --seed "${seed}" --expdir "${expdir}"
        reference+=("${expdir}")
    done
done

run python "${recipe}/local/plot_ksweep.py" --expdirs "${expdirs[@]}" --baselines "${reference[@]}" --out "${out}"
