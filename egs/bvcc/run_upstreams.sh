#!/usr/bin/env bash
# Benchmark SSL upstreams: train one model per upstream on BVCC, evaluate each on every MOS-Bench test
# set present, one table with the upstreams as rows.
#
#   ./run_upstreams.sh --bvcc_root /corpora/main --upstreams "wavlm_base hubert_base my_pkg.mod:my_upstream" \
#       --variant distilmos --roots ../mosbench/conf/roots.yaml
#
# For each entry of --upstreams (an s3prl hub name, NAME=CKPT for a local checkpoint such as
# wavlm_local=/ckpts/mine.pt, or package.module:callable) this runs run.sh (data, tokens when the
# variant needs them, training, evaluation) into <exproot>/<variant>_<upstream>[_k<k>]_seed<seed>, the
# names run_table1.sh uses (a finished run is not trained again), then ../mosbench/run.sh on its best
# checkpoint into <expdir>/mosbench/. Last, ../mosbench/combine.sh puts the upstreams side by side:
# <exproot>/upstreams_<variant>.md and .csv (utterance SRCC per test set, and the means). Options not listed
# below go to every run.sh.
# --dry_run true prints the commands instead of running them.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/../utils/lib.sh"
. "${recipe}/local/sweep_options.sh"  # the run names; --bvcc_root, --somos_root, --device, --exproot, --dry_run

upstreams="wavlm_base"     # hub names, NAME=CKPT, or package.module:callable
variant=distilmos          # the expert trained on each upstream (distilmos-registry --list)
seed=0                     # training seed
n_clusters=200             # k of the token stores (variants that use tokens)
roots=                     # MOS-Bench corpus roots (YAML: corpus name -> folder); default: egs/mosbench's own
path_options+=" roots"
. "${recipe}/../utils/parse_options.sh"
refuse_passthrough "see --upstreams (NAME=CKPT), --exproot" upstream upstream_ckpt expdir
mosbench="$(cd "${recipe}/../mosbench" && pwd)"  # another recipe: its documented commands only
roots_args=()
[ -n "${roots}" ] && roots_args=(--roots "${roots}")

runs=()
for entry in ${upstreams}; do
    use_upstream "${entry}"
    expdir="${exproot}/$(run_name "${variant}" "${tag}" "${n_clusters}" "${seed}")"
    sweep_run "${variant} on ${tag} -> ${expdir}" "${recipe}/run.sh" --bvcc_root "${bvcc_root}" \
        --somos_root "${somos_root}" "${upstream_args[@]}" --variant "${variant}" --n_clusters "${n_clusters}" \
        --seed "${seed}" --device "${device}" --expdir "${expdir}"
    run "${mosbench}/run.sh" --model "${expdir}/best-states-val.ckpt" "${roots_args[@]}" \
        --outdir "${expdir}/mosbench" --device "${device}" --title "${variant} on ${tag}"
    runs+=("${tag}=${expdir}/mosbench")
done

run "${mosbench}/combine.sh" --out "${exproot}/upstreams_${variant}" "${runs[@]}"
