#!/usr/bin/env bash
# DistilMOS on BVCC (in-domain) and SOMOS (zero-shot), ESPnet style.
#
#   ./run.sh --bvcc_root /corpora/main --somos_root /corpora/somos --upstream wavlm_large --variant distilmos
#
# Stages: 1 data prep (BVCC, SOMOS test), 2 tokens (fit on train, dump every split; distilmos only),
#         3 train, 4 evaluate (val, test, somos_test), 5 table and plots.
# A finished stage leaves <expdir>/.done.<stage>; running again with the same options skips finished
# stages and resumes training from the last checkpoint. Token stores are shared by every run with the
# same upstream, checkpoint and k (tokens/<upstream>_k<k>).
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=5
bvcc_root=
somos_root=
upstream=wavlm_base
upstream_ckpt=
variant=distilmos          # distilmos | no_token | mse_distill | ssl_mos
n_clusters=200
expdir=
datadir=data
tokendir=tokens
device=cuda
ngpu=1
total_steps=10000
eval_step=1000
seed=0
batch_size=32
num_workers=4
overrides=                 # more s3prl -o overrides, joined with ",,"
token_args=                # more options for python -m upstream_tokens fit/dump

usage() { sed -n '2,12p' "$0"; grep -E '^[a-z_]+=' "$0" | sed 's/^/  --/'; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage ;;
        --*=*) name="${1%%=*}"; name="${name#--}"; value="${1#*=}"; shift ;;
        --*) name="${1#--}"; [ $# -ge 2 ] || { echo "option --${name} needs a value" >&2; exit 1; }; value="$2"; shift 2 ;;
        *) echo "unexpected argument: $1" >&2; usage ;;
    esac
    case "${name}" in
        stage|stop_stage|bvcc_root|somos_root|upstream|upstream_ckpt|variant|n_clusters|expdir|datadir|tokendir|\
        device|ngpu|total_steps|eval_step|seed|batch_size|num_workers|overrides|token_args)
            printf -v "${name}" '%s' "${value}" ;;
        *) echo "unknown option --${name}" >&2; usage ;;
    esac
done

case "${variant}" in
    distilmos) downstream=distilmos; config="${REPO_ROOT}/downstream/distilmos/config.yaml"; select=() ;;
    no_token) downstream=distilmos; config="${REPO_ROOT}/downstream/distilmos/config_no_token.yaml"; select=() ;;
    mse_distill) downstream=distilmos; config="${REPO_ROOT}/downstream/distilmos/config_mse_distill.yaml"; select=() ;;
    ssl_mos) downstream=ssl_mos; config="${REPO_ROOT}/downstream/ssl_mos/config.yaml"; select=(-s last_hidden_state) ;;
    *) echo "unknown --variant ${variant}" >&2; exit 1 ;;
esac

upstream_tag="$(basename "${upstream_ckpt:-${upstream}}" .pt | tr ':/' '__')"
[ "${upstream}" = "${upstream_tag}" ] || upstream_tag="${upstream}_${upstream_tag}"
upstream_tag="$(echo "${upstream_tag}" | tr ':/' '__')"
expdir="${expdir:-exp/${variant}_${upstream_tag}_k${n_clusters}_seed${seed}}"
store="${tokendir}/${upstream_tag}_k${n_clusters}"
mkdir -p "${expdir}"
ckpt_args=()
[ -n "${upstream_ckpt}" ] && ckpt_args=(-k "${upstream_ckpt}")

log() { echo "$(date '+%H:%M:%S') [stage $1] ${*:2}"; }
todo() { [ "$1" -ge "${stage}" ] && [ "$1" -le "${stop_stage}" ] && [ ! -f "${expdir}/.done.$1" ]; }
done_stage() { touch "${expdir}/.done.$1"; }
splits=(val test)
[ -f "${datadir}/somos/test.csv" ] || [ -n "${somos_root}" ] && splits+=(somos_test)

if todo 1; then
    log 1 "data preparation"
    [ -n "${bvcc_root}" ] || { echo "--bvcc_root is required for stage 1" >&2; exit 1; }
    python local/data_prep.py --bvcc_root "${bvcc_root}" --out_dir "${datadir}/bvcc"
    if [ -n "${somos_root}" ]; then
        python ../somos/local/data_prep.py --somos_root "${somos_root}" --out_dir "${datadir}/somos"
    fi
    done_stage 1
fi

if todo 2 && [ "${variant}" = distilmos ]; then
    log 2 "tokens: ${store}"
    if [ ! -f "${store}/meta.json" ]; then
        if [ "${ngpu}" -gt 1 ]; then
            torchrun --nproc_per_node "${ngpu}" -m upstream_tokens fit --csv "${datadir}/bvcc/train.csv" \
                -u "${upstream}" "${ckpt_args[@]}" --n_clusters "${n_clusters}" --seed "${seed}" --out "${store}" ${token_args}
            python -m upstream_tokens fit --out "${store}" --from_shards "${ngpu}"
        else
            python -m upstream_tokens fit --csv "${datadir}/bvcc/train.csv" -u "${upstream}" "${ckpt_args[@]}" \
                --n_clusters "${n_clusters}" --seed "${seed}" --out "${store}" --device "${device}" ${token_args}
        fi
    fi
    for split in train val test; do
        if [ "${ngpu}" -gt 1 ]; then
            torchrun --nproc_per_node "${ngpu}" -m upstream_tokens dump --csv "${datadir}/bvcc/${split}.csv" \
                --store "${store}" --split "${split}" "${ckpt_args[@]}" ${token_args}
            python -m upstream_tokens merge --store "${store}" --split "${split}" --nshard "${ngpu}"
        else
            python -m upstream_tokens dump --csv "${datadir}/bvcc/${split}.csv" --store "${store}" --split "${split}" \
                "${ckpt_args[@]}" --device "${device}" ${token_args}
        fi
    done
    done_stage 2
fi

if todo 3; then
    log 3 "training ${variant} on ${upstream} -> ${expdir}"
    o="config.downstream_expert.datarc.data_dir=${datadir}/bvcc"
    o+=",,config.downstream_expert.datarc.extra_eval.somos_test=${datadir}/somos/test.csv"
    o+=",,config.downstream_expert.datarc.token_store=${store}"
    o+=",,config.downstream_expert.datarc.train_batch_size=${batch_size}"
    o+=",,config.downstream_expert.datarc.num_workers=${num_workers}"
    o+=",,config.runner.total_steps=${total_steps},,config.runner.eval_step=${eval_step},,config.runner.save_step=${eval_step}"
    [ -n "${overrides}" ] && o+=",,${overrides}"
    printf '{"upstream": "%s", "upstream_ckpt": "%s", "variant": "%s", "n_clusters": %s, "seed": %s}\n' \
        "${upstream}" "${upstream_ckpt}" "${variant}" "${n_clusters}" "${seed}" > "${expdir}/info.json"
    launcher=(python)
    [ "${ngpu}" -gt 1 ] && launcher=(torchrun --nproc_per_node "${ngpu}")
    # -a resumes from the last states-*.ckpt when the folder holds one
    "${launcher[@]}" "${REPO_ROOT}/run_downstream.py" -m train -a -u "${upstream}" "${ckpt_args[@]}" \
        -d "${downstream}" -c "${config}" "${select[@]}" -f --device "${device}" --seed "${seed}" -p "${expdir}" -o "${o}"
    done_stage 3
fi

if todo 4; then
    log 4 "evaluating ${expdir} on ${splits[*]}"
    for split in "${splits[@]}"; do
        python "${REPO_ROOT}/run_downstream.py" -m evaluate -e "${expdir}/best-states-val.ckpt" -t "${split}" --device "${device}"
    done
    done_stage 4
fi

if todo 5; then
    log 5 "table and plots"
    python local/make_table.py --expdirs "${expdir}" --out "${expdir}/table"
    python local/plots.py --expdir "${expdir}"
    done_stage 5
fi
