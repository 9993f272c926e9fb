#!/usr/bin/env bash
# SALF-MOS's feature ablation (the paper's Table III): the same head on frozen SSL features and on
# hand-crafted ones (s3prl's mfcc and fbank upstreams, which need no weights), on BVCC, one table.
#
#   ./run_salf_ablation.sh --bvcc_root /corpora/main --somos_root /corpora/somos [--upstreams "wavlm_base"]
#
# Calls run.sh --variant salf_mos (upstream frozen, its last layer) once per (upstream, seed) into
# <exproot>/<variant>_<upstream>_seed<seed>, the names run.sh uses, so a finished run is not trained again
# and a killed ablation continues where it stopped. Then local/make_table.py writes one table of them all,
# <exproot>/salf_ablation.md and .csv (seeds averaged). Upstreams: --ssl_upstream (the paper's wav2vec 2.0),
# --baselines, then any --upstreams (hub names, or NAME=CKPT for a local checkpoint).
# Options that are not listed below go to run.sh unchanged (--batch_size, --overrides, --datadir ...).
# --dry_run prints the commands instead of running them.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/local/names.sh"

bvcc_root=                 # BVCC folder (DATA/wav, DATA/sets)
somos_root=                # SOMOS folder (audios/, training_files/); optional
ssl_upstream=wav2vec2_base_960  # the SSL upstream (the paper: wav2vec 2.0 Base); NAME=CKPT for a local one
baselines="mfcc fbank"     # hand-crafted feature upstreams of s3prl
upstreams=                 # more upstreams to compare (hub names, or NAME=CKPT)
variant=salf_mos           # salf_mos (one layer) or salf_mos_wsum (weighted sum of all layers)
seeds="0"                  # training seeds; the table averages them
device=cuda                # cuda or cpu
exproot="${recipe}/exp"    # where experiment folders and the table go
dry_run=false              # print the commands instead of running them
path_options="bvcc_root somos_root exproot"
passthrough=()             # any other option goes to every run.sh
. "${recipe}/../utils/parse_options.sh"
for name in variant upstream upstream_ckpt seed expdir; do
    for given in "${passthrough[@]}"; do
        [ "${given}" != "--${name}" ] || { echo "--${name} is set per run here; use this script's options" >&2; exit 1; }
    done
done
case "${variant}" in salf_mos|salf_mos_wsum) ;; *) echo "--variant must be salf_mos or salf_mos_wsum" >&2; exit 1 ;; esac

run() {
    if "${dry_run}"; then
        printf '%q ' "$@"; echo
    else
        "$@"
    fi
}

expdirs=()
for entry in ${ssl_upstream} ${baselines} ${upstreams}; do
    upstream="${entry%%=*}"
    ckpt=
    case "${entry}" in *=*) ckpt="${entry#*=}" ;; esac
    [ -e "${ckpt}" ] && ckpt="$(abspath "${ckpt}")"  # a local file; a URL is kept as it is
    tag="$(upstream_tag "${upstream}" "${ckpt}")"
    for seed in ${seeds}; do
        expdir="${exproot}/$(run_name "${variant}" "${tag}" 0 "${seed}")"
        ckpt_args=()
        [ -n "${ckpt}" ] && ckpt_args=(--upstream_ckpt "${ckpt}")
        "${dry_run}" || echo "=== ${variant} ${tag} seed ${seed} -> ${expdir}"
        run "${recipe}/run.sh" --bvcc_root "${bvcc_root}" --somos_root "${somos_root}" \
            --upstream "${upstream}" "${ckpt_args[@]}" --variant "${variant}" --seed "${seed}" \
            --device "${device}" --expdir "${expdir}" "${passthrough[@]}"
        expdirs+=("${expdir}")
    done
done

run python "${recipe}/local/make_table.py" --expdirs "${expdirs[@]}" --out "${exproot}/salf_ablation"
