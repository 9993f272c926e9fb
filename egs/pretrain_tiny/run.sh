#!/usr/bin/env bash
# Pretrain the demo's tiny HuBERT offline: an eSpeak NG speech pool (varied voices, rates, sentences and the
# demo's degradations, plus the demo generator's speech), then HuBERT masked prediction with s3prl's own
# HubertModel: iteration 1 on k-means of MFCCs, iteration 2 on k-means of its layer 2. Writes the checkpoint
# (hubert_local format) with its card, curves and report, and prints the evidence: held-out masked accuracy
# vs chance and vs the same model at init, and linear probes of every layer vs the random init.
#
#   egs/pretrain_tiny/run.sh [--out egs/demo/pretrained/tiny_hubert.pt] [--steps 2000] [--seed 0]
#
# About 16 minutes on one CPU core with the defaults (one torch thread: bit-identical reruns).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/path.sh"
. "${here}/../utils/lib.sh"

stage=1                    # 1: speech pool, 2: pretraining
stop_stage=2               # last stage to run
workdir="${here}/work"     # the pool (ignored by git)
out="${here}/work/tiny_hubert.pt"  # checkpoint to write; the card, curves and report go beside it
n_utts=720                 # eSpeak NG utterances in the pool
n_generated=120            # utterances of the demo's speech generator in the pool
iterations=2               # HuBERT iterations (1: MFCC targets only)
k="50,100"                 # k-means clusters per iteration
steps=2000                 # training steps per iteration
crop_s=1.5                 # seconds per training crop
lr=2.0e-3                  # peak learning rate (AdamW, warm-up then linear decay)
seed=0                     # pool, k-means, initialisation, batches and masks
path_options="workdir out"
. "${here}/../utils/parse_options.sh"
cd "${REPO_ROOT}"

if in_stages 1; then
    log 1 "speech pool -> ${workdir}/pool"
    OMP_NUM_THREADS=1 python "${here}/local/make_pool.py" --out_dir "${workdir}/pool" --n_utts "${n_utts}" \
        --n_generated "${n_generated}" --seed "${seed}"
fi
if in_stages 2; then
    log 2 "masked-prediction pretraining -> ${out}"
    OMP_NUM_THREADS=1 distilmos-pretrain-tiny --pool "${workdir}/pool/pool.csv" --out "${out}" \
        --iterations "${iterations}" --k "${k}" --steps "${steps}" --crop_s "${crop_s}" --lr "${lr}" \
        --seed "${seed}" --threads 1 \
        --recipe "egs/pretrain_tiny/run.sh --out ${out#"${REPO_ROOT}"/} --n_utts ${n_utts} --n_generated ${n_generated} --iterations ${iterations} --k ${k} --steps ${steps} --crop_s ${crop_s} --lr ${lr} --seed ${seed}"
fi
