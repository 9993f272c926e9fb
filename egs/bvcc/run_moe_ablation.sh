#!/usr/bin/env bash
# MoE-MOS ablation: the number of experts N and the system-classification task.
#
#   ./run_moe_ablation.sh --bvcc_root /corpora/main --somos_root /corpora/somos [--n_experts "1 2 4 8"] \
#       [--seeds "0"] [--upstream wav2vec2_base_960]
#
# Calls run.sh --variant moe_mos (stages 1-4) once per (N, with/without classification, seed), each
# into its own experiment folder <exproot>/moe_mos_n<N>_<cls|nocls>_<upstream>_seed<seed>; a run whose
# stages are done is skipped, so rerunning resumes. "Without" trains MOS alone (weight 1 at every step;
# the stage learning rates stay). Then local/moe_ablation.py writes <out>.md / <out>.csv (one row per
# N and task setting: BVCC test utterance and system SRCC, LCC, MSE, validation system accuracy, gate
# entropy, expert usage), <out>.png (utterance and system SRCC against N, with and without the task)
# and <out>_usage.png (the expert-usage histogram of the best run by validation utterance SRCC).
# Options that are not listed below go to run.sh unchanged. --dry_run prints the commands.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/../utils/lib.sh"
. "${recipe}/local/sweep_options.sh"  # the run names; --bvcc_root, --somos_root, --device, --exproot, --dry_run

upstream=wav2vec2_base_960  # the (frozen) upstream; the paper uses wav2vec 2.0
upstream_ckpt=             # its checkpoint, for a *_local upstream
n_experts="1 2 4 8"        # the numbers of experts
tasks="cls nocls"          # with (cls) and without (nocls) the system-classification task
seeds="0"                  # training seeds; the table and plot average them
total_steps=10000          # training steps per run
overrides=                 # more s3prl -o overrides for every run, joined with ",,"
out=                       # output prefix; default: <exproot>/moe_ablation
path_options+=" out"
file_options="upstream_ckpt"
. "${recipe}/../utils/parse_options.sh"
refuse_passthrough "see --n_experts, --tasks, --seeds" variant seed expdir stop_stage

use_upstream "${upstream}=${upstream_ckpt}"
out="${out:-${exproot}/moe_ablation}"
common=(--bvcc_root "${bvcc_root}" --somos_root "${somos_root}" "${upstream_args[@]}"
        --device "${device}" --total_steps "${total_steps}" --variant moe_mos --stop_stage 4)

runs=()
for n in ${n_experts}; do
    for task in ${tasks}; do
        case "${task}" in
            cls) classification=True ;;
            nocls) classification=False ;;
            *) echo "--tasks takes cls and/or nocls, not '${task}'" >&2; exit 1 ;;
        esac
        o="config.downstream_expert.modelrc.n_experts=${n},,config.downstream_expert.modelrc.classification=${classification}"
        [ -n "${overrides}" ] && o+=",,${overrides}"
        for seed in ${seeds}; do
            expdir="${exproot}/moe_mos_n${n}_${task}_${tag}_seed${seed}"
            sweep_run "MoE-MOS N=${n} ${task} ${tag} seed ${seed} -> ${expdir}" "${recipe}/run.sh" "${common[@]}" \
                --seed "${seed}" --expdir "${expdir}" --overrides "${o}"
            runs+=("${n}:${task}:${expdir}")
        done
    done
done

run python "${recipe}/local/moe_ablation.py" --runs "${runs[@]}" --out "${out}"
