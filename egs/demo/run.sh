#!/usr/bin/env bash
# The whole pipeline offline, on CPU, in minutes: a generated corpus in the BVCC and SOMOS layouts and a
# tiny randomly initialised WavLM in s3prl's wavlm_local format stand in for the real corpora and
# weights; then egs/bvcc/run.sh runs its stages for distilmos, no_token and ssl_mos and prints the table.
#
#   ./run.sh [--workdir demo_out] [--total_steps 200] [--variants "distilmos no_token ssl_mos"]
#
# The numbers show that the pipeline works, not what the paper's models reach: the upstream has random
# weights and the corpus is synthetic.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/../bvcc/path.sh"

workdir="${here}/demo_out"  # everything the demo writes (ignored by git)
total_steps=200            # training steps per variant
eval_step=50               # validate and save every this many steps
variants="distilmos no_token ssl_mos"  # registered variants to train
seed=0                     # corpus, upstream and training seed
path_options="workdir"
. "${here}/../utils/parse_options.sh"
mkdir -p "${workdir}"
workdir="$(cd "${workdir}" && pwd)"
start=$(date +%s)

if [ ! -f "${workdir}/corpus/record.json" ]; then
    echo "== generating the corpus and the tiny upstream"
    python "${here}/local/make_corpus.py" --out_dir "${workdir}/corpus" --seed "${seed}"
fi
[ -f "${workdir}/tiny_wavlm.pt" ] || python -m distilmos.tiny_upstream --arch wavlm --size tiny --seed "${seed}" \
    --out "${workdir}/tiny_wavlm.pt"

expdirs=()
for variant in ${variants}; do
    echo "== ${variant}"
    expdir="${workdir}/exp/${variant}"
    "${here}/../bvcc/run.sh" --bvcc_root "${workdir}/corpus/bvcc" --somos_root "${workdir}/corpus/somos" \
        --datadir "${workdir}/data" --tokendir "${workdir}/tokens" --expdir "${expdir}" \
        --upstream wavlm_local --upstream_ckpt "${workdir}/tiny_wavlm.pt" --variant "${variant}" \
        --n_clusters 50 --device cpu --total_steps "${total_steps}" --eval_step "${eval_step}" --seed "${seed}" \
        --batch_size 8 --num_workers 0 --stop_stage 4 \
        --overrides "config.optimizer.lr=5.0e-4,,config.downstream_expert.datarc.eval_batch_size=16" \
        --token_args "--quiet"
    python "${here}/../bvcc/local/plots.py" --expdir "${expdir}"
    expdirs+=("${expdir}")
done

python "${here}/../bvcc/local/make_table.py" --expdirs "${expdirs[@]}" --out "${workdir}/table"
echo "plots: ${workdir}/exp/*/scatter_*.png ${workdir}/exp/*/curves.png"
echo "done in $(( $(date +%s) - start )) s"
