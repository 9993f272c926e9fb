#!/usr/bin/env bash
# Models on every MOS-Bench test set present: prepare, score, one table (one model) or a leaderboard (several).
#
#   ./run.sh --model distilmos_wavlm_large.pt --roots conf/roots.yaml
#   ./run.sh --model ../bvcc/exp/distilmos_wavlm_base_k200_seed0/best-states-val.ckpt --device cuda
#   ./run.sh --models "ours=model.pt hf://<owner>/<repo>/model.pt peer://distillmos peer://dnsmos/p808"
#   ./run.sh --demo true           # the offline showcase: generated stand-ins, a demo model, Distill-MOS, DNSMOS
#
# A model is a predictor file (distilmos-predict export / import), an experiment checkpoint (exported once),
# an hf://<owner>/<repo>/<file>[@revision] file (fetched into the Hugging Face cache; HF_HUB_OFFLINE=1 reads
# the cache only) or a peer:// predictor of another package (peer://distillmos, peer://dnsmos/p808,
# peer://dnsmos/ovrl; pip install 'distilmos[peers]'). --models takes several, "LABEL=REF" naming a row.
# --roots is a YAML mapping of corpus names to their folders (see conf/roots.example.yaml; distilmos-prep
# --list prints the corpora and the layout each root must hold). Stages: 0 (--demo true only) the generated
# stand-ins and the demo model, 1 data lists of every corpus present (stamped and shared
# in <datadir>: a corpus prepared before from the same root is kept), 2 the model(s): checked, a checkpoint
# exported, 3 scoring of every test set (metrics_<corpus>_<split>.json and predictions_<corpus>_<split>.csv,
# the formats of egs/bvcc/run.sh stage 4, and scored.json: the model's identity, speed and machine; a set
# scored before by the same model from the same list is kept), 4 the table: one model: utterance- and
# system-level MSE, LCC, SRCC, KTAU per test set and their mean, in <outdir>/mosbench.{md,csv,png};
# several: one row per model (utterance / system SRCC per set, their means, parameters, files/s) in
# <outdir>/leaderboard.{md,csv,png}, each model's results in <cachedir>/<its identity> (the predictor file's
# sha256, or the peer's name and package version), so a model scored before is never scored again.
# Corpora missing from the roots file or from disk are listed as skipped.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/../utils/lib.sh"

stage=0                    # first stage to run (0: the demo's corpora and model; nothing without --demo)
stop_stage=4               # last stage to run
model=                     # one model: predictor file, experiment checkpoint, hf:// file or peer:// predictor
models=                    # several models, one row each: "REF ..." or "LABEL=REF ..." (space-separated)
roots=conf/roots.yaml      # YAML: corpus name -> folder
corpora=                   # only these corpora (space-separated; default: every registered one)
datadir=                   # data lists, shared by every model (default: data; --demo: <outdir>/data)
outdir=                    # default: exp/<model file name>; with --models exp/leaderboard; --demo exp/demo
cachedir=exp/cache         # --models: results per (model identity, test set), shared by every leaderboard
device=auto                # cpu, cuda, cuda:N, auto (cuda when available)
batch_size=16              # windows per batch when scoring (1: one by one)
overwrite=false            # score again the sets scored before
title=                     # table title (default: the model's path, or "MOS-Bench leaderboard")
demo=false                 # the offline showcase: stand-ins of every corpus, a demo model, the installed peers
demo_steps=300             # --demo: training steps of the demo model (no_token DistilMOS on the tiny HuBERT)
path_options="roots datadir outdir cachedir"
file_options="model"       # made absolute when a file: hf://... and peer://... are references
. "${recipe}/../utils/parse_options.sh"

# --models: files given relative to where run.sh was called from, before the cd below
refs=()
for item in ${models}; do
    label=""; ref="${item}"
    if [[ "${item}" =~ ^([A-Za-z0-9_.+-]+)=(.+)$ ]]; then label="${BASH_REMATCH[1]}="; ref="${BASH_REMATCH[2]}"; fi
    [ -e "${ref}" ] && ref="$(cd "$(dirname "${ref}")" && pwd)/$(basename "${ref}")"
    refs+=("${label}${ref}")
done
cd "${recipe}"
bench() { python local/benchmark.py "$@"; }

if "${demo}"; then
    demodir="${outdir:-exp/demo}"
    mkdir -p "${demodir}"
    demodir="$(cd "${demodir}" && pwd)"
    outdir="${demodir}"
    roots="${demodir}/roots.yaml"
    datadir="${datadir:-${demodir}/data}"
    if [ -z "${model}" ] && [ "${#refs[@]}" -eq 0 ]; then
        refs=("demo=${demodir}/demo_exp/best-states-val.ckpt")
        for peer in distillmos dnsmos/p808 dnsmos/ovrl; do
            if python -c "import sys; from distilmos.predictor import peers; sys.exit(bool(peers.missing(peers.spec('${peer}'))))"; then
                refs+=("peer://${peer}")
            else
                echo "run.sh: peer://${peer} left out: its package is not installed (pip install -e '.[peers]')" >&2
            fi
        done
    fi
    if in_stages 0; then
        log 0 "demo: stand-ins of the MOS-Bench corpora and the demo corpus -> ${demodir}"
        [ -f "${demodir}/corpora/mosbench_record.json" ] || \
            distilmos-standins mosbench --out_dir "${demodir}/corpora" --seed 0
        [ -f "${demodir}/corpus/record.json" ] || distilmos-standins bvcc_somos --out_dir "${demodir}/corpus" --seed 0
        {
            echo "bvcc: ${demodir}/corpus/bvcc"
            echo "somos: ${demodir}/corpus/somos"
            for folder in "${demodir}"/corpora/*/; do
                root="${folder%/}"
                [ -d "${root}/ood/DATA" ] && root="${root}/ood"  # BC19's listening test ships inside ood/
                echo "$(basename "${folder}"): ${root}"
            done
        } > "${roots}"
        if [ ! -f "${demodir}/demo_exp/best-states-val.ckpt" ]; then
            log 0 "demo: no_token DistilMOS on the pretrained tiny HuBERT, ${demo_steps} steps on the demo BVCC"
            read -r -a upstream_args <<< "$(../utils/tiny_upstream.sh pretrained "${demodir}" 0)"
            ../bvcc/run.sh --bvcc_root "${demodir}/corpus/bvcc" --datadir "${demodir}/train_data" "${upstream_args[@]}" \
                --variant no_token --expdir "${demodir}/demo_exp" --device cpu --total_steps "${demo_steps}" \
                --eval_step 100 --batch_size 8 --num_workers 0 --seed 0 --stop_stage 3 \
                --overrides "config.optimizer.lr=5.0e-4,,config.downstream_expert.datarc.eval_batch_size=16"
        fi
    fi
fi

datadir="${datadir:-data}"
if [ -n "${model}" ] && [ "${#refs[@]}" -gt 0 ]; then
    echo "run.sh: give --model (one model) or --models (a leaderboard), not both" >&2; exit 1
fi
[ -n "${model}" ] || [ "${#refs[@]}" -gt 0 ] || {
    echo "run.sh: --model or --models is required (predictor files, checkpoints, hf:// files, peer:// predictors)" >&2
    exit 1
}
if [ -n "${model}" ]; then
    name="$(basename "${model}")"
    outdir="${outdir:-exp/${name%.*}}"
else
    outdir="${outdir:-exp/leaderboard}"
fi
mkdir -p "${outdir}"
manifest="${outdir}/sets.json"

if in_stages 1; then
    log 1 "data lists of the corpora in ${roots} -> ${datadir}"
    only=()
    [ -n "${corpora}" ] && only=(--corpora ${corpora})
    bench prep --roots "${roots}" --datadir "${datadir}" --manifest "${manifest}" "${only[@]}"
fi

predictor="${outdir}/model.path"
models_json="${outdir}/models.json"
if in_stages 2; then
    if [ -n "${model}" ]; then
        log 2 "the predictor of ${model}"
        bench model --model "${model}" --outdir "${outdir}" > "${predictor}.tmp"
        mv "${predictor}.tmp" "${predictor}"
    else
        log 2 "${#refs[@]} models: ${refs[*]}"
        bench models --models "${refs[@]}" --outdir "${outdir}"
    fi
fi

if in_stages 3; then
    log 3 "scoring every test set"
    extra=()
    "${overwrite}" && extra=(--overwrite)
    if [ -n "${model}" ]; then
        [ -f "${predictor}" ] || { echo "run.sh: ${predictor} missing: run stage 2 first" >&2; exit 1; }
        bench score --model "$(cat "${predictor}")" --manifest "${manifest}" --outdir "${outdir}" \
            --device "${device}" --batch_size "${batch_size}" "${extra[@]}"
    else
        bench score --models_json "${models_json}" --manifest "${manifest}" --cachedir "${cachedir}" \
            --device "${device}" --batch_size "${batch_size}" "${extra[@]}"
    fi
fi

if in_stages 4; then
    if [ -n "${model}" ]; then
        log 4 "table -> ${outdir}/mosbench.{md,csv,png}"
        bench table --manifest "${manifest}" --outdir "${outdir}" --title "${title:-MOS-Bench: ${model}}"
    else
        log 4 "leaderboard -> ${outdir}/leaderboard.{md,csv,png}"
        bench board --models_json "${models_json}" --manifest "${manifest}" --cachedir "${cachedir}" \
            --out "${outdir}/leaderboard" --title "${title:-MOS-Bench leaderboard}"
    fi
fi
