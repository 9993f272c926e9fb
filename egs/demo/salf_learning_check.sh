#!/usr/bin/env bash
# Does SALF-MOS learn on frozen features? It trains on the generated learning-check corpus (20 systems x 40
# utterances) with the tiny pretrained HuBERT frozen (egs/demo/pretrained; --upstream random: a random tiny
# WavLM), and is evaluated on its test list beside a ridge regression on the mean and standard deviation
# over time of the same features (local/ridge_yardstick.py).
#
#   ./salf_learning_check.sh [--workdir learning_out] [--lr 1e-2] [--momentum 0] [--max_epochs 300] [--patience 50]
#
# Target: SALF-MOS's test utterance SRCC no more than 0.05 below the yardstick's. The corpus, the tiny
# upstream and the data lists are those of learning_check.sh (shared when --workdir is the same). The
# paper's recipe is SGD without momentum, L1, batch 4, validation each epoch, selection by validation
# utterance SRCC and early stopping after 20 epochs without improvement; all of that is kept but the
# learning rate (1e-2 here, 1e-4 in the paper: too slow for a CPU-sized run) and the patience, counted in
# epochs of a 532-utterance list: 50 epochs here are 6,650 steps, fewer than the paper's 20 epochs of
# BVCC (24,880 steps).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/path.sh"
. "${here}/../utils/lib.sh"

variant=salf_mos           # salf_mos (last layer) or salf_mos_wsum (weighted sum of all layers)
lr=1.0e-2                  # SGD learning rate (the paper: 1e-4)
momentum=0.0               # SGD momentum (the paper gives none)
max_epochs=300             # upper bound on training epochs (532 utterances, batch 4: 133 steps each)
patience=50                # early stopping: epochs without a better validation utterance SRCC
. "${here}/local/learning_options.sh"  # --workdir, --seed, --upstream: those of every learning check
. "${here}/../utils/parse_options.sh"
demo_setup learning "${seed}"

# one folder per setting, so a rerun with another setting trains anew instead of finding the last one done
expdir="${workdir}/exp/${variant}_${upstream}_lr${lr}_m${momentum}_p${patience}_e${max_epochs}"
common=(--bvcc_root "${workdir}/corpus/bvcc" --somos_root "${workdir}/corpus/somos" --datadir "${workdir}/data"
        --expdir "${expdir}" --variant "${variant}" "${upstream_args[@]}" --device cpu --seed "${seed}" --num_workers 0)
"${here}/../bvcc/run.sh" "${common[@]}" --stop_stage 1
# validation once an epoch, as in the paper (batch 4; the training loader keeps the last partial batch)
n_train=$(( $(wc -l < "${workdir}/data/bvcc/train.csv") - 1 ))
steps_per_epoch=$(( (n_train + 3) / 4 ))
# the upstream is frozen: its hidden states are computed once (stage 2, a feature cache), so an epoch of the
# 1,574-parameter head takes seconds and the run can go on to early stopping
"${here}/../bvcc/run.sh" "${common[@]}" --stage 2 --feature_cache true --cachedir "${workdir}/cache" \
    --total_steps $(( max_epochs * steps_per_epoch )) --eval_step "${steps_per_epoch}" \
    --overrides "config.optimizer.lr=${lr},,config.optimizer.momentum=${momentum},,config.runner.early_stopping.patience=${patience},,config.downstream_expert.datarc.eval_batch_size=16"

# the yardstick reads what the head reads: the last layer, or every layer for the weighted sum
layer=last
[ "${variant}" = salf_mos_wsum ] && layer=all
ridge="${workdir}/exp/ridge_${upstream}_${layer}"
[ -f "${ridge}/metrics_test.json" ] || python "${here}/local/ridge_yardstick.py" "${upstream_args[@]}" \
    --layer "${layer}" --datadir "${workdir}/data/bvcc" --out "${ridge}"

python "${here}/local/heads_table.py" --runs "SALF-MOS (${variant})=${expdir}" "ridge on mean+std (${layer} layer)=${ridge}" \
    --reference "ridge on mean+std (${layer} layer)" --margin 0.05
echo "curves: ${expdir}/curves.png"
echo "done in $(elapsed) s"
