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
. "${recipe}/../utils/lib.sh"
. "${recipe}/local/names.sh"

upstream=wavlm_base        # the upstream of the analysed runs (the paper: WavLM Base)
upstream_ckpt=             # its checkpoint, for a *_local upstream
variants="ssl_mos no_token mse_distill distilmos"  # the runs to analyse
n_clusters=200             # k of the distilmos run
seed=0                     # training seed of the runs
device=cuda                # cuda or cpu
exproot="${recipe}/exp"    # where the runs are; the analysis is written there
datadir="${recipe}/data"   # data lists (<datadir>/bvcc/<split>.csv)
split=test                 # the BVCC split to analyse
path_options="exproot datadir upstream_ckpt"
. "${recipe}/../utils/parse_options.sh"

tag="$(upstream_tag "${upstream}" "${upstream_ckpt}")"
expdirs=()
for variant in ${variants}; do
    expdir="${exproot}/$(run_name "${variant}" "${tag}" "${n_clusters}" "${seed}")"
    [ -f "${expdir}/best-states-val.ckpt" ] || { echo "no trained ${variant} run at ${expdir}" >&2; exit 1; }
    expdirs+=("${expdir}")
done
python "${recipe}/local/cca_analysis.py" --expdirs "${expdirs[@]}" --csv "${datadir}/bvcc/${split}.csv" \
    --out "${exproot}/cca_${tag}_seed${seed}" --device "${device}" --seed "${seed}"
