#!/usr/bin/env bash
# Does training really learn? A few hundred CPU steps on a generated corpus with the tiny pretrained HuBERT
# (egs/demo/pretrained; --upstream random: a random tiny WavLM), then the best validation utterance SRCC
# of each variant against the target 0.6.
#
#   ./learning_check.sh [--workdir learning_out] [--total_steps 400] [--variants "no_token distilmos"] [--seed 0]
#
# The corpus is larger than the demo's (20 systems x 40 utterances): with the demo's 150 training
# utterances the model overfits within a few epochs. About 6 minutes per variant on 2 cores. Each run's
# curves and scatter plots land in <workdir>/exp/<variant>/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/path.sh"
. "${here}/../utils/lib.sh"

total_steps=400            # training steps per variant
variants="no_token distilmos"  # registered variants to train
. "${here}/local/learning_options.sh"  # --workdir, --seed, --upstream: those of every learning check
. "${here}/../utils/parse_options.sh"
demo_setup learning "${seed}"

expdirs=()
for variant in ${variants}; do
    echo "== ${variant}"
    expdir="${workdir}/exp/${variant}"
    "${here}/../bvcc/run.sh" --bvcc_root "${workdir}/corpus/bvcc" --somos_root "${workdir}/corpus/somos" \
        --datadir "${workdir}/data" --tokendir "${workdir}/tokens" --expdir "${expdir}" \
        "${upstream_args[@]}" --variant "${variant}" \
        --n_clusters 50 --device cpu --total_steps "${total_steps}" --eval_step 50 --seed "${seed}" \
        --batch_size 8 --num_workers 0 \
        --overrides "config.optimizer.lr=3.0e-4,,config.downstream_expert.datarc.eval_batch_size=16" \
        --token_args "--quiet"
    expdirs+=("${expdir}")
done

python - "${expdirs[@]}" <<'EOF'
import json, os, sys

def fmt(value):
    return "n/a" if value is None else f"{value:.3f}"


print("\n| variant | best val utt SRCC | at step | val sys SRCC | target ≥ 0.6 |\n|---|---|---|---|---|")
for expdir in sys.argv[1:]:
    with open(os.path.join(expdir, "log.jsonl")) as handle:
        vals = [r for r in map(json.loads, handle) if r.get("split") == "val"]
    best = max(vals, key=lambda r: r["utt_SRCC"] if r["utt_SRCC"] is not None else -1)
    met = "met" if (best["utt_SRCC"] or -1) >= 0.6 else "not met"
    print(f"| {os.path.basename(expdir)} | {fmt(best['utt_SRCC'])} | {best['step']} | {fmt(best['sys_SRCC'])} | {met} |")
EOF
echo "curves: ${workdir}/exp/*/curves.png"
echo "done in $(elapsed) s"
