#!/usr/bin/env bash
# The whole pipeline offline, on CPU, in minutes: a generated corpus in the BVCC and SOMOS layouts and a
# tiny HuBERT pretrained offline (egs/demo/pretrained/tiny_hubert.pt, s3prl's hubert_local format; its
# card says how it was made: egs/pretrain_tiny) stand in for the real corpora and weights; then
# egs/bvcc/run.sh runs its stages for distilmos, no_token and ssl_mos and the table is printed. It is
# run_table1.sh with one seed and three variants: <workdir>/exp/table1.md, and each run's plots in its
# folder <workdir>/exp/*/. --upstream random takes a randomly initialised tiny WavLM (wavlm_local) instead.
#
#   ./run.sh [--workdir demo_out] [--total_steps 200] [--variants "distilmos no_token ssl_mos"] [--jobs 2]
#
# The variants train side by side, --jobs at a time (default: one per CPU core, each on one thread);
# each writes its log to <workdir>/logs/<variant>_seed<seed>.log.
# The numbers show that the pipeline works, not what the paper's models reach: the upstream is tiny and
# the corpus is synthetic.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/path.sh"
. "${here}/../utils/lib.sh"

workdir="${here}/demo_out"  # everything the demo writes (ignored by git)
total_steps=200            # training steps per variant
eval_step=50               # validate and save every this many steps
variants="distilmos no_token ssl_mos"  # registered variants to train
seed=0                     # corpus, upstream and training seed
jobs="$(getconf _NPROCESSORS_ONLN)"  # variants trained at the same time (default: the CPU count)
upstream=pretrained        # pretrained: the shipped tiny HuBERT; random: a random tiny WavLM
path_options="workdir"
. "${here}/../utils/parse_options.sh"

"${here}/run_table1.sh" --workdir "${workdir}" --variants "${variants}" --seeds "${seed}" --corpus_seed "${seed}" \
    --total_steps "${total_steps}" --eval_step "${eval_step}" --jobs "${jobs}" --upstream "${upstream}"
echo "plots: ${workdir}/exp/*/scatter_*.png ${workdir}/exp/*/curves.png"
