#!/usr/bin/env bash
# Do listener-aware training and the uncertainty head work, and what do they cost? Four runs of one variant
# (default no_token: the DistilMOS network without the token heads) on the generated learning-check corpus
# (20 systems x 40 utterances; its listeners rate with systematic offsets) with the tiny pretrained HuBERT
# frozen (egs/demo/pretrained; --upstream random: a random tiny WavLM) from one feature cache: plain,
# --listener true, --uncertainty true and both. Then one Markdown table on the test list: utterance and
# system SRCC, MSE, the predicted std against |error| (Spearman) for the uncertainty rows, and the training
# time per step beside the plain run's.
#
#   ./listener_learning_check.sh [--workdir learning_out] [--total_steps 200] [--hidden_dim 64] [--seed 0]
#
# The corpus, upstream and data lists are those of the other learning checks (shared when --workdir is).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/path.sh"
. "${here}/../utils/lib.sh"

total_steps=200            # training steps per run
eval_step=50               # validate (and select the best checkpoint) every this many steps
batch_size=8               # training batch
hidden_dim=64              # the DistilMOS network's width (the paper's 256 makes four runs take hours on 2 cores)
variant=no_token           # the registered variant every run trains
. "${here}/local/learning_options.sh"  # --workdir, --seed, --upstream: those of every learning check
. "${here}/../utils/parse_options.sh"
demo_setup learning "${seed}"
# these networks are small: one thread each runs them several times faster on a shared CPU than two
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

common=(--bvcc_root "${workdir}/corpus/bvcc" --datadir "${workdir}/data" --variant "${variant}" "${upstream_args[@]}"
    --device cpu --seed "${seed}" --num_workers 0 --freeze true --feature_cache true --cachedir "${workdir}/cache"
    --total_steps "${total_steps}" --eval_step "${eval_step}" --batch_size "${batch_size}"
    --overrides "config.optimizer.lr=3.0e-4,,config.downstream_expert.datarc.eval_batch_size=16,,config.downstream_expert.modelrc.hidden_dim=${hidden_dim}")

runs=()
for setting in "plain:false:false" "listener:true:false" "uncertainty:false:true" "listener+uncertainty:true:true"; do
    IFS=: read -r name listener uncertainty <<< "${setting}"
    expdir="${workdir}/exp/listener_check_${variant}_${upstream}_${name/+/_}_steps${total_steps}"
    echo "== ${name} -> ${expdir}"
    # data lists and the feature cache (shared), then training alone, timed, then the evaluation
    "${here}/../bvcc/run.sh" "${common[@]}" --expdir "${expdir}" --listener "${listener}" \
        --uncertainty "${uncertainty}" --stop_stage 2
    if [ ! -f "${expdir}/train_seconds" ]; then
        t0=$(date +%s.%N)
        "${here}/../bvcc/run.sh" "${common[@]}" --expdir "${expdir}" --listener "${listener}" \
            --uncertainty "${uncertainty}" --stage 3 --stop_stage 3
        python -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "${t0}" "$(date +%s.%N)" \
            > "${expdir}/train_seconds"
    fi
    "${here}/../bvcc/run.sh" "${common[@]}" --expdir "${expdir}" --listener "${listener}" \
        --uncertainty "${uncertainty}" --stage 4 --stop_stage 4
    runs+=("${name}=${expdir}")
done

python "${here}/local/listener_table.py" --total_steps "${total_steps}" --runs "${runs[@]}"
echo "done in $(elapsed) s"
