#!/usr/bin/env bash
# A miniature Table 1 offline: SSL-MOS, DistilMOS, w/o token prediction (no_token) and MSE distillation on the
# demo's generated corpus (BVCC-like in-domain test, SOMOS-like zero-shot) with the tiny pretrained HuBERT,
# over several training seeds, mean ± std. It is egs/bvcc/run_table1.sh with the demo's settings: each
# (variant, seed) is one run_table1.sh call, --jobs of them at a time (one torch thread each); a finished
# run is never trained twice, so a killed sweep continues where it stopped. The last call collects every
# run and prints the table (<workdir>/exp/table1.md); each run's plots land in its folder <workdir>/exp/*/.
#
#   egs/demo/run_table1.sh [--workdir table1_out] [--seeds "0 1 2"] [--total_steps 200] [--jobs 2]
#
# About 25 minutes on 2 CPU cores with the defaults. The numbers compare the models on a synthetic
# corpus with a tiny upstream; they are not the paper's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/path.sh"
. "${here}/../utils/lib.sh"
. "${here}/local/setup.sh"

workdir="${here}/table1_out"  # everything the sweep writes (ignored by git)
variants="ssl_mos no_token mse_distill distilmos"  # registered variants (the rows of Table 1)
seeds="0 1 2"              # training seeds; the table averages them
total_steps=200            # training steps per run
eval_step=50               # validate and save every this many steps
upstream=pretrained        # pretrained: the shipped tiny HuBERT; random: a random tiny WavLM
corpus_seed=0              # seed of the generated corpus (the same for every run) and of a random upstream
jobs="$(getconf _NPROCESSORS_ONLN)"  # runs trained at the same time (default: the CPU count)
path_options="workdir"
. "${here}/../utils/parse_options.sh"
demo_setup demo "${corpus_seed}"
mkdir -p "${workdir}/logs"
upstream_name="${upstream_args[1]}" ckpt="${upstream_args[3]}"  # --upstream NAME --upstream_ckpt CKPT
table1=("${here}/../bvcc/run_table1.sh" --bvcc_root "${workdir}/corpus/bvcc" --somos_root "${workdir}/corpus/somos"
        --upstreams "${upstream_name}=${ckpt}" --exproot "${workdir}/exp" --n_clusters 50 --device cpu
        --total_steps "${total_steps}" --eval_step "${eval_step}" --datadir "${workdir}/data"
        --tokendir "${workdir}/tokens" --batch_size 8 --num_workers 0 --token_args "--quiet"
        --overrides "config.optimizer.lr=5.0e-4,,config.downstream_expert.datarc.eval_batch_size=16")
read -r -a variant_list <<< "${variants}"
read -r -a seed_list <<< "${seeds}"

# Data lists and the token store once, before the runs share them (stages 1-2 of the first DistilMOS run).
echo "== data lists and tokens"
OMP_NUM_THREADS=1 "${here}/../bvcc/run.sh" --bvcc_root "${workdir}/corpus/bvcc" --somos_root "${workdir}/corpus/somos" \
    "${upstream_args[@]}" --variant distilmos --n_clusters 50 --device cpu \
    --datadir "${workdir}/data" --tokendir "${workdir}/tokens" --num_workers 0 --token_args "--quiet" \
    --expdir "${workdir}/exp/.prep" --stop_stage 2 > "${workdir}/logs/prep.log" 2>&1 \
    || { tail -n 30 "${workdir}/logs/prep.log" >&2; exit 1; }

declare -A logs=()  # pid -> log of each running job
failed=0
finish_one() {  # wait for any running job; show the end of its log when it failed
    local pid status=0
    wait -n -p pid || status=$?
    if [ "${status}" -ne 0 ]; then
        echo "== FAILED (exit ${status}); the end of ${logs[${pid}]}:" >&2
        tail -n 30 "${logs[${pid}]}" >&2
        failed=$((failed + 1))
    fi
    unset "logs[${pid}]"
}
for seed in "${seed_list[@]}"; do
    for variant in "${variant_list[@]}"; do
        [ "${#logs[@]}" -lt "${jobs}" ] || finish_one
        logfile="${workdir}/logs/${variant}_seed${seed}.log"
        echo "== ${variant} seed ${seed} (log: ${logfile}, $(elapsed) s)"
        OMP_NUM_THREADS=1 "${table1[@]}" --variants "${variant}" --seeds "${seed}" > "${logfile}" 2>&1 &
        logs[$!]="${logfile}"
    done
done
while [ "${#logs[@]}" -gt 0 ]; do finish_one; done
[ "${failed}" -eq 0 ] || { echo "${failed} run(s) failed; see ${workdir}/logs/" >&2; exit 1; }

# every run is finished: this call only collects them and writes the table
"${table1[@]}" --variants "${variants}" --seeds "${seeds}" 2>&1 | grep -v "^==="
echo "done in $(elapsed) s"
