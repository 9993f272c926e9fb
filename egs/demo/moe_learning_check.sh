#!/usr/bin/env bash
# Does MoE-MOS learn on frozen features, and does its gate collapse? It trains MoE-MOS with its defaults
# (N = 4 experts, system classification, the three stages) and, beside it, N = 1 without the
# classification task (a plain MLP head), on the generated learning-check corpus (20 systems x 40
# utterances) with the tiny pretrained HuBERT frozen (--upstream random: a random tiny WavLM), both from
# one feature cache; then the test split of each, beside the ridge yardstick on the mean and standard
# deviation over time of the frozen last layer (local/ridge_yardstick.py), with the expert usage, gate
# entropy and system accuracy at the selected validation.
#
#   ./moe_learning_check.sh [--workdir learning_out] [--total_steps 400] [--lr 3e-4] [--seed 0]
#
# The corpus, upstream and data lists are those of learning_check.sh and salf_learning_check.sh (shared
# when --workdir is the same). The stage boundaries stay fractions of --total_steps.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/path.sh"
. "${here}/../utils/lib.sh"

total_steps=400            # training steps per run
eval_step=50               # validate (and select the best checkpoint) every this many steps
batch_size=8               # training batch
lr=3.0e-4                  # peak learning rate of stages 1 and 2 (stage 3: a tenth of it)
. "${here}/local/learning_options.sh"  # --workdir, --seed, --upstream: those of every learning check
. "${here}/../utils/parse_options.sh"
demo_setup learning "${seed}"

runs=()
for setting in "n4_cls:4:True" "n1_nocls:1:False"; do
    IFS=: read -r name n classification <<< "${setting}"
    expdir="${workdir}/exp/moe_mos_${name}_${upstream}_lr${lr}_steps${total_steps}"
    echo "== MoE-MOS ${name} -> ${expdir}"
    # the upstream is frozen: its hidden states are computed once (stage 2, a feature cache shared by both runs)
    "${here}/../bvcc/run.sh" --bvcc_root "${workdir}/corpus/bvcc" --somos_root "${workdir}/corpus/somos" \
        --datadir "${workdir}/data" --expdir "${expdir}" --variant moe_mos "${upstream_args[@]}" --device cpu \
        --seed "${seed}" --num_workers 0 --feature_cache true --cachedir "${workdir}/cache" \
        --total_steps "${total_steps}" --eval_step "${eval_step}" --batch_size "${batch_size}" \
        --overrides "config.optimizer.lr=${lr},,config.downstream_expert.modelrc.n_experts=${n},,config.downstream_expert.modelrc.classification=${classification},,config.downstream_expert.datarc.eval_batch_size=16"
    runs+=("MoE-MOS, N ${n}, classification ${classification}=${expdir}")
done

ridge="${workdir}/exp/ridge_${upstream}_last"
[ -f "${ridge}/metrics_test.json" ] || python "${here}/local/ridge_yardstick.py" "${upstream_args[@]}" \
    --layer last --datadir "${workdir}/data/bvcc" --out "${ridge}"

python "${here}/local/heads_table.py" --runs "${runs[@]}" "ridge on mean+std=${ridge}" --reference "ridge on mean+std"
echo "curves: ${workdir}/exp/moe_mos_*/curves.png"
echo "done in $(elapsed) s"
