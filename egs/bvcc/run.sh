#!/usr/bin/env bash
# DistilMOS on BVCC (in-domain) and SOMOS (zero-shot), ESPnet style.
#
#   ./run.sh --bvcc_root /corpora/main --somos_root /corpora/somos --upstream wavlm_large --variant distilmos
#
# Stages: 1 data prep (BVCC, SOMOS test), 2 tokens (fit on train, dump every split; for the variants
#         that use them) and, with --feature_cache true (frozen variants), the upstream's hidden states of
#         every split, 3 train, 4 evaluate (val, test, somos_test), 5 table and plots.
# A finished stage leaves <expdir>/.done.<stage>; running again with the same options skips finished
# stages and resumes training from the last whole checkpoint. Data lists (<datadir>) and token stores
# (<tokendir>/<upstream>_k<k>) are shared by every run that uses them. Paths given as options are taken
# relative to the current directory; the defaults (data, tokens, exp) live in this recipe's folder.
# --batch_size is the total over --ngpu processes (the runner gives each of them batch_size / ngpu).
# --freeze true keeps the upstream frozen (expdir gets _frozen); --feature_cache true then computes its
# hidden states once (stage 2, <cachedir>/<upstream>_<layers>) and trains and evaluates from them.
# --listener true trains any variant listener-aware (LDNet's mean listener; needs the listener lists stage 1
# writes) and --uncertainty true with a predicted std (Gaussian NLL); the default expdir gets _listener /
# _uncertainty. downstream/distilmos/README.md describes both options.
# --split random811 --split_seed S trains and evaluates on every labelled BVCC utterance dealt 8:1:1 at
# random (the split SALF-MOS reports on) instead of the official lists: its data lists, token store, feature
# cache and default expdir get _random811_seed<S>, so runs of the two splits never share a file, and an
# expdir that holds a run of another split is refused.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/../utils/lib.sh"
. "${recipe}/local/names.sh"

stage=1                    # first stage to run
stop_stage=5               # last stage to run
bvcc_root=                 # BVCC folder (DATA/wav, DATA/sets); needed by stage 1
somos_root=                # SOMOS folder (audios/, training_files/); optional
upstream=wavlm_base        # s3prl hub name, NAME_local (with --upstream_ckpt) or package.module:callable
upstream_ckpt=             # checkpoint of a *_local upstream (a local file or a URL)
variant=distilmos          # a registered variant: distilmos-registry --list
n_clusters=200             # k of the token store (variants that use tokens)
expdir=                    # default: <exproot>/<variant>_<upstream>[_k<k>]_seed<seed>
exproot=exp                # where experiment folders go
datadir=data               # data lists, shared by every run
tokendir=tokens            # token stores, shared by every run
freeze=false               # keep the upstream frozen even if the variant fine-tunes it (a frozen probe)
feature_cache=false        # frozen runs: dump the upstream's hidden states once (stage 2), train from them
cachedir=cache             # feature caches, shared by every run
device=cuda                # cuda or cpu
ngpu=1                     # processes (torchrun) for tokens and training
total_steps=               # training steps (default: the variant's config; 10000 for DistilMOS)
eval_step=                 # validate and save every this many steps, and at the last (default: the config's)
seed=0                     # training seed
token_seed=0               # k-means seed: one token store serves runs of every training seed
batch_size=                # total over --ngpu processes (default: the config's; 32 for DistilMOS)
num_workers=4              # data loader processes
overrides=                 # more s3prl -o overrides, joined with ",,"
split=official             # BVCC split: official, or random811 (every labelled utterance dealt 8:1:1 at random)
split_seed=0               # seed of --split random811
listener=false             # listener-aware training (modelrc.listener.enabled): per-listener ratings, mean listener
uncertainty=false          # predict a standard deviation too (modelrc.uncertainty), trained by Gaussian NLL
allow_constant_test=false  # accept a placeholder TESTSET (every rating the same) as BVCC's test labels
token_args=                # more options for distilmos-tokens fit/dump
path_options="bvcc_root somos_root expdir exproot datadir tokendir cachedir"
file_options="upstream_ckpt"
. "${recipe}/../utils/parse_options.sh"
cd "${recipe}"

# the variant's registration (distilmos/registry.py): expert, config, runner_args, fine_tune, tokens, waveforms
settings="$(distilmos-registry --shell "${variant}")"
eval "${settings}"
config="${REPO_ROOT}/downstream/${expert}/${config}"
[ "${freeze}" = true ] && fine_tune=false
finetune=()
[ "${fine_tune}" = true ] && finetune=(-f)
# Training length, validation interval and batch default to the variant's config (DistilMOS: the paper's
# 10,000 steps, every 1,000, batch 32; SALF-MOS: batch 4, validation every epoch, early stopping); the
# runner shares the batch out among the --ngpu processes (and refuses one that does not divide).
[ "${ngpu}" -ge 1 ] || { echo "--ngpu must be at least 1" >&2; exit 1; }
if [ -n "${batch_size}" ] && [ $(( batch_size % ngpu )) -ne 0 ]; then
    echo "--batch_size ${batch_size} is not divisible by --ngpu ${ngpu}" >&2
    exit 1
fi

tag="$(upstream_tag "${upstream}" "${upstream_ckpt}")"
case "${split}" in
    official|random811) ;;
    *) echo "--split must be official or random811, not '${split}'" >&2; exit 1 ;;
esac
split_suffix="$(split_tag "${split}" "${split_seed}")"
bvccdata="${datadir}/bvcc${split_suffix}"
frozen_suffix=
[ "${freeze}" = true ] && frozen_suffix=_frozen
for flag in listener uncertainty; do
    case "${!flag}" in true|false) ;; *) echo "--${flag} must be true or false, not '${!flag}'" >&2; exit 1 ;; esac
done
option_overrides=
[ "${listener}" = true ] && frozen_suffix+=_listener && option_overrides+=",,config.downstream_expert.modelrc.listener.enabled=True"
[ "${uncertainty}" = true ] && frozen_suffix+=_uncertainty && option_overrides+=",,config.downstream_expert.modelrc.uncertainty=True"
default_expdir="${exproot}/$(run_name "${variant}" "${tag}" "${n_clusters}" "${seed}")${frozen_suffix}${split_suffix}"
expdir="${expdir:-${default_expdir}}"
store="${tokendir}/${tag}_k${n_clusters}${split_suffix}"
# the feature cache holds the layers the variant's featurizer reads (-s): all of them, or the one it selects
cache_layers=hidden_states
for (( i = 0; i < ${#runner_args[@]}; i++ )); do
    if [ "${runner_args[i]}" = -s ]; then
        case "${runner_args[i + 1]}" in
            last_hidden_state) cache_layers=last ;;
            hidden_state_*) cache_layers="${runner_args[i + 1]#hidden_state_}" ;;
        esac
    fi
done
cache="${cachedir}/${tag}_${cache_layers}${split_suffix}"
if [ "${feature_cache}" = true ] && [ "${fine_tune}" = true ]; then
    echo "--feature_cache true: variant ${variant} fine-tunes its upstream (-f), so cached hidden states would be" \
        "stale; add --freeze true for a frozen run" >&2
    exit 1
fi
if [ "${feature_cache}" = true ] && [ "${waveforms}" = true ]; then
    echo "--feature_cache true: variant ${variant} also runs a frozen teacher on the waveforms, which a feature" \
        "cache does not hold; leave --feature_cache false" >&2
    exit 1
fi
mkdir -p "${expdir}"
stamp_dir="${expdir}"
# an experiment folder holds runs of one split: one trained on other lists would be skipped or resumed silently
wanted_split="split=${split}${split_suffix:+ split_seed=${split_seed}}"
had_split=
if [ -f "${expdir}/.split" ]; then
    had_split="$(cat "${expdir}/.split")"
elif compgen -G "${expdir}/.done.*" > /dev/null; then
    had_split="split=official"  # a run from before the split option
fi
if [ -n "${had_split}" ] && [ "${had_split}" != "${wanted_split}" ]; then
    echo "${expdir} holds a run on the BVCC lists of ${had_split}; this run asks for ${wanted_split}: give another" \
        "--expdir (the default name carries the split)" >&2
    exit 1
fi
echo "${wanted_split}" > "${expdir}/.split"
ckpt_args=()
[ -n "${upstream_ckpt}" ] && ckpt_args=(-k "${upstream_ckpt}")
# N processes: torchrun, with a free rendezvous port so that several runs can share a machine. Each
# token-extraction rank takes cuda:LOCAL_RANK by default; on CPU the device is named.
launcher=(python)
token_device=(--device "${device}")
if [ "${ngpu}" -gt 1 ]; then
    launcher=(python -m torch.distributed.run --standalone --nproc_per_node "${ngpu}")
    case "${device}" in cuda*) token_device=() ;; esac
fi

q() { printf '%q ' "$@"; }  # shell-quoted words, for a command line of local/tokens.py

if todo 1; then
    # Prepared data lists are shared: a run with the same corpus roots (or none given) reuses them.
    # Each split has its own lists (<datadir>/bvcc<split suffix>) and stamp, so another split never
    # overwrites them.
    prep_stamp="${datadir}/.prepared${split_suffix}"
    wanted="bvcc_root=${bvcc_root} somos_root=${somos_root}${split_suffix:+ split=${split} split_seed=${split_seed}}"
    if [ -f "${prep_stamp}" ] && { [ -z "${bvcc_root}" ] || [ "$(cat "${prep_stamp}")" = "${wanted}" ]; }; then
        log 1 "data lists in ${datadir} already prepared ($(cat "${prep_stamp}"))"
    else
        log 1 "data preparation"
        [ -n "${bvcc_root}" ] || { echo "--bvcc_root is required for stage 1" >&2; exit 2; }
        rm -f "${prep_stamp}"
        constant_test=()
        [ "${allow_constant_test}" = true ] && constant_test=(--allow_constant_test)
        distilmos-prep bvcc --root "${bvcc_root}" --out_dir "${bvccdata}" --split "${split}" \
            --split_seed "${split_seed}" "${constant_test[@]}"
        if [ -n "${somos_root}" ]; then
            distilmos-prep somos --root "${somos_root}" --out_dir "${datadir}/somos"
        fi
        echo "${wanted}" > "${prep_stamp}"
    fi
    done_stage 1
fi

# stage 2 has two parts (tokens, feature cache): decided once, marked done after both
stage2=false
todo 2 && stage2=true
if [ "${stage2}" = true ] && [ "${tokens}" = true ]; then
    log 2 "tokens: ${store}"
    # local/tokens.py runs upstream_tokens commands in one process (one start-up for every split)
    fit="fit $(q --csv "${bvccdata}/train.csv" -u "${upstream}" "${ckpt_args[@]}" --n_clusters "${n_clusters}" \
        --seed "${token_seed}" --out "${store}" "${token_device[@]}") ${token_args}"
    commands=()
    if [ ! -f "${store}/meta.json" ]; then
        if [ "${ngpu}" -gt 1 ]; then
            # each rank clusters its share of the batches; the shards are then combined into k centroids
            "${launcher[@]}" local/tokens.py "${fit}"
            distilmos-tokens fit --out "${store}" --from_shards "${ngpu}"
        else
            commands+=("${fit}")
        fi
    fi
    # A finished split is a quick no-op (its sample ids are checked against the list); a killed dump resumes.
    merges=()
    for part in train val test; do
        [ -f "${bvccdata}/${part}.csv" ] || continue
        commands+=("dump $(q --csv "${bvccdata}/${part}.csv" --store "${store}" --split "${part}" "${ckpt_args[@]}" \
            "${token_device[@]}") ${token_args}")
        merges+=("merge $(q --store "${store}" --split "${part}" --nshard "${ngpu}")")
    done
    "${launcher[@]}" local/tokens.py "${commands[@]}"
    if [ "${ngpu}" -gt 1 ]; then
        python local/tokens.py "${merges[@]}"
    fi
fi

if [ "${stage2}" = true ] && [ "${feature_cache}" = true ]; then
    log 2 "feature cache: ${cache} (layers ${cache_layers})"
    commands=()
    merges=()
    for part in train val test somos_test; do
        list="${bvccdata}/${part}.csv"
        [ "${part}" = somos_test ] && list="${datadir}/somos/test.csv"
        [ -f "${list}" ] || continue
        commands+=("cache $(q --csv "${list}" --store "${cache}" --split "${part}" -u "${upstream}" "${ckpt_args[@]}" \
            --layers "${cache_layers}" "${token_device[@]}") ${token_args}")
        merges+=("merge $(q --store "${cache}" --split "${part}" --nshard "${ngpu}")")
    done
    "${launcher[@]}" local/tokens.py "${commands[@]}"
    if [ "${ngpu}" -gt 1 ]; then
        python local/tokens.py "${merges[@]}"
    fi
fi

[ "${stage2}" = true ] && done_stage 2

if todo 3; then
    log 3 "training ${variant} on ${upstream} -> ${expdir}"
    o="config.downstream_expert.datarc.data_dir=${bvccdata}"
    o+=",,config.downstream_expert.datarc.extra_eval.somos_test=${datadir}/somos/test.csv"
    o+=",,config.downstream_expert.datarc.token_store=${store}"
    [ "${feature_cache}" = true ] && o+=",,config.downstream_expert.datarc.feature_cache=${cache}"
    [ -n "${batch_size}" ] && o+=",,config.downstream_expert.datarc.train_batch_size=${batch_size}"
    o+=",,config.downstream_expert.datarc.num_workers=${num_workers}"
    [ -n "${total_steps}" ] && o+=",,config.runner.total_steps=${total_steps}"
    [ -n "${eval_step}" ] && o+=",,config.runner.eval_step=${eval_step},,config.runner.save_step=${eval_step}"
    o+="${option_overrides}"
    [ -n "${overrides}" ] && o+=",,${overrides}"
    printf '{"upstream": "%s", "upstream_ckpt": "%s", "variant": "%s", "n_clusters": %s, "seed": %s, ' \
        "${upstream}" "${upstream_ckpt}" "${variant}" "${n_clusters}" "${seed}" > "${expdir}/info.json"
    printf '"split": "%s", "split_seed": %s, "listener": %s, "uncertainty": %s}\n' "${split}" "${split_seed}" \
        "${listener}" "${uncertainty}" >> "${expdir}/info.json"
    # -a resumes from the newest states-*.ckpt (model, optimizer, scheduler, step, best score so far);
    # (checkpoints are written atomically; one half-written by an older version is removed first). A run
    # stopped by SIGTERM/SIGINT exits with status 75 after saving: rerun this script to continue.
    python local/prune_checkpoints.py --expdir "${expdir}"
    "${launcher[@]}" "${REPO_ROOT}/run_downstream.py" -m train -a -u "${upstream}" "${ckpt_args[@]}" \
        -d "${expert}" -c "${config}" "${runner_args[@]}" "${finetune[@]}" --device "${device}" --seed "${seed}" -p "${expdir}" -o "${o}"
    done_stage 3
fi

if todo 4; then
    splits=(val)
    [ -f "${bvccdata}/test.csv" ] && splits+=(test)
    [ -f "${datadir}/somos/test.csv" ] && splits+=(somos_test)
    log 4 "evaluating ${expdir} on ${splits[*]}"
    python local/evaluate.py --ckpt "${expdir}/best-states-val.ckpt" --splits "${splits[@]}" --device "${device}"
    done_stage 4
fi

if todo 5; then
    log 5 "table and plots"
    python local/make_table.py --expdirs "${expdir}" --out "${expdir}/table"
    python local/plots.py --expdir "${expdir}"
    done_stage 5
fi
