#!/usr/bin/env bash
# Table 1 of the paper: 4 upstreams x 4 models on BVCC (in-domain) and SOMOS (zero-shot), ESPnet style.
#
#   ./run_table1.sh --bvcc_root /corpora/main --somos_root /corpora/somos --seeds "0 1 2"
#
# Calls run.sh once per (upstream, variant, seed) into <exproot>/<variant>_<upstream>[_k<k>]_seed<seed>,
# the names run.sh and run_ksweep.sh use too, so a finished run is never trained twice and a killed
# sweep continues where it stopped when run again. Data lists and token stores (one per upstream) are
# shared by all runs. Then local/make_table.py averages the seeds and writes <exproot>/table1.md and
# <exproot>/table1.csv (ours beside the paper's numbers, with the differences).
# An entry of --upstreams is an s3prl hub name, or NAME=CKPT for a local checkpoint (wavlm_local=x.pt).
# Options that are not listed below go to run.sh unchanged (--batch_size, --overrides, --datadir ...).
# --dry_run prints the commands instead of running them.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/../utils/lib.sh"
. "${recipe}/local/sweep_options.sh"  # the run names; --bvcc_root, --somos_root, --device, --exproot, --dry_run

upstreams="wav2vec2_base_960 wavlm_base wavlm_base_plus wavlm_large"  # hub names, or NAME=CKPT
variants="ssl_mos no_token mse_distill distilmos"  # registered variants (distilmos-registry --list)
seeds="0"                  # training seeds; the table averages them
n_clusters=200             # k of the token stores
ngpu=1                     # processes per run (torchrun)
total_steps=10000          # training steps per run
. "${recipe}/../utils/parse_options.sh"
refuse_passthrough "see --upstreams (NAME=CKPT), --variants, --seeds, --exproot" variant upstream upstream_ckpt seed expdir

expdirs=()
for entry in ${upstreams}; do
    use_upstream "${entry}"
    for variant in ${variants}; do
        for seed in ${seeds}; do
            expdir="${exproot}/$(run_name "${variant}" "${tag}" "${n_clusters}" "${seed}")"
            sweep_run "${variant} ${tag} seed ${seed} -> ${expdir}" "${recipe}/run.sh" --bvcc_root "${bvcc_root}" \
                --somos_root "${somos_root}" "${upstream_args[@]}" --variant "${variant}" \
                --n_clusters "${n_clusters}" --seed "${seed}" --device "${device}" --ngpu "${ngpu}" \
                --total_steps "${total_steps}" --expdir "${expdir}"
            expdirs+=("${expdir}")
        done
    done
done

run python "${recipe}/local/make_table.py" --expdirs "${expdirs[@]}" --out "${exproot}/table1"
