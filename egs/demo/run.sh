#!/usr/bin/env bash
# The whole pipeline offline, on CPU, in minutes: a generated corpus in the BVCC and SOMOS layouts and a
# tiny HuBERT pretrained offline (egs/demo/pretrained/tiny_hubert.pt, s3prl's hubert_local format; its
# card says how it was made: egs/pretrain_tiny) stand in for the real corpora and weights; then
# egs/bvcc/run.sh runs its stages for distilmos, no_token and ssl_mos and prints the table.
# --upstream random takes a randomly initialised tiny WavLM (wavlm_local) instead, as the demo did before.
#
#   ./run.sh [--workdir demo_out] [--total_steps 200] [--variants "distilmos no_token ssl_mos"] [--jobs 2]
#
# The variants train side by side, --jobs at a time (default: one per CPU core, each on one thread);
# each writes its log to <workdir>/logs/<variant>.log.
# The numbers show that the pipeline works, not what the paper's models reach: the upstream is tiny and
# the corpus is synthetic.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/../bvcc/path.sh"

workdir="${here}/demo_out"  # everything the demo writes (ignored by git)
total_steps=200            # training steps per variant
eval_step=50               # validate and save every this many steps
variants="distilmos no_token ssl_mos"  # registered variants to train
seed=0                     # corpus, upstream and training seed
jobs="$(getconf _NPROCESSORS_ONLN)"  # variants trained at the same time (default: the CPU count)
upstream=pretrained        # pretrained: the shipped tiny HuBERT; random: a random tiny WavLM
path_options="workdir"
. "${here}/../utils/parse_options.sh"
mkdir -p "${workdir}"
workdir="$(cd "${workdir}" && pwd)"
start=$(date +%s)

if [ ! -f "${workdir}/corpus/record.json" ]; then
    echo "== generating the corpus"
    python -m distilmos.standins bvcc_somos --out_dir "${workdir}/corpus" --seed "${seed}"
fi
upstream_args=($("${here}/local/tiny_upstream.sh" "${upstream}" "${workdir}" "${seed}"))

common=(--bvcc_root "${workdir}/corpus/bvcc" --somos_root "${workdir}/corpus/somos"
        --datadir "${workdir}/data" --tokendir "${workdir}/tokens"
        "${upstream_args[@]}"
        --n_clusters 50 --device cpu --total_steps "${total_steps}" --eval_step "${eval_step}" --seed "${seed}"
        --batch_size 8 --num_workers 0
        --overrides "config.optimizer.lr=5.0e-4,,config.downstream_expert.datarc.eval_batch_size=16"
        --token_args "--quiet")
read -r -a variant_list <<< "${variants}"
# the data lists once, before the variants share them
"${here}/../bvcc/run.sh" "${common[@]}" --variant "${variant_list[0]}" --expdir "${workdir}/exp/${variant_list[0]}" \
    --stop_stage 1

# One variant: stages 2-4 of egs/bvcc/run.sh (tokens, training, evaluation), then its plots.
train_variant() {
    local variant="$1" expdir="${workdir}/exp/$1"
    OMP_NUM_THREADS=1 "${here}/../bvcc/run.sh" "${common[@]}" --variant "${variant}" --expdir "${expdir}" \
        --stage 2 --stop_stage 4 \
        && python "${here}/../bvcc/local/plots.py" --expdir "${expdir}"
}

mkdir -p "${workdir}/logs"
declare -A pids=()
failed=()
finish_one() {  # wait for any running variant; report it
    local pid variant
    wait -n -p pid || true
    for variant in "${!pids[@]}"; do
        [ "${pids[${variant}]}" = "${pid}" ] || continue
        unset "pids[${variant}]"
        if [ -f "${workdir}/exp/${variant}/.done.4" ]; then
            echo "== ${variant} done ($(( $(date +%s) - start )) s)"
        else
            echo "== ${variant} FAILED; the end of ${workdir}/logs/${variant}.log:" >&2
            tail -n 30 "${workdir}/logs/${variant}.log" >&2
            failed+=("${variant}")
        fi
    done
}
for variant in "${variant_list[@]}"; do
    [ "${#pids[@]}" -lt "${jobs}" ] || finish_one
    echo "== ${variant}: training (log: ${workdir}/logs/${variant}.log)"
    train_variant "${variant}" > "${workdir}/logs/${variant}.log" 2>&1 &
    pids[${variant}]=$!
done
while [ "${#pids[@]}" -gt 0 ]; do finish_one; done
[ "${#failed[@]}" -eq 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
expdirs=()
for variant in "${variant_list[@]}"; do expdirs+=("${workdir}/exp/${variant}"); done

python "${here}/../bvcc/local/make_table.py" --expdirs "${expdirs[@]}" --out "${workdir}/table"
echo "plots: ${workdir}/exp/*/scatter_*.png ${workdir}/exp/*/curves.png"
echo "done in $(( $(date +%s) - start )) s"
