#!/usr/bin/env bash
# One model on every MOS-Bench test set present: prepare, score, one table.
#
#   ./run.sh --model distilmos_wavlm_large.pt --roots conf/roots.yaml
#   ./run.sh --model ../bvcc/exp/distilmos_wavlm_base_k200_seed0/best-states-val.ckpt --device cuda
#
# --model is a predictor file (distilmos-predict export) or an experiment checkpoint (exported on the
# fly into <outdir>/model.pt). --roots is a YAML mapping of corpus names to their folders (see
# conf/roots.example.yaml; distilmos-prep --list prints the corpora and the layout each
# root must hold). Stages: 1 data lists of every corpus present (stamped and shared in <datadir>: a
# corpus prepared before from the same root is kept), 2 the predictor file, 3 scoring of every test set
# with the predictor (<outdir>/metrics_<corpus>_<split>.json and predictions_<corpus>_<split>.csv, the
# formats of egs/bvcc/run.sh stage 4; a set scored before is kept), 4 the table: utterance- and
# system-level MSE, LCC, SRCC, KTAU per test set and their mean over the sets, printed and written to
# <outdir>/mosbench.{md,csv,png}. Corpora missing from the roots file or from disk are listed as skipped.
# combine.sh puts several finished benchmarks side by side, one row each.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/../utils/lib.sh"

stage=1                    # first stage to run
stop_stage=4               # last stage to run
model=                     # predictor file or experiment checkpoint (required)
roots=conf/roots.yaml      # YAML: corpus name -> folder
corpora=                   # only these corpora (space-separated; default: every registered one)
datadir=data               # data lists, shared by every model
outdir=                    # default: exp/<model file name without extension>
device=auto                # cpu, cuda, cuda:N, auto (cuda when available)
batch_size=16              # windows per batch when scoring (1: one by one)
overwrite=false            # score again the sets scored before
title=                     # table title (default: the model's path)
path_options="model roots datadir outdir"
. "${recipe}/../utils/parse_options.sh"
cd "${recipe}"

[ -n "${model}" ] || { echo "run.sh: --model is required (a predictor file or an experiment checkpoint)" >&2; exit 1; }
name="$(basename "${model}")"
outdir="${outdir:-exp/${name%.*}}"
mkdir -p "${outdir}"
manifest="${outdir}/sets.json"
bench() { python local/benchmark.py "$@"; }

if in_stages 1; then
    log 1 "data lists of the corpora in ${roots} -> ${datadir}"
    only=()
    [ -n "${corpora}" ] && only=(--corpora ${corpora})
    bench prep --roots "${roots}" --datadir "${datadir}" --manifest "${manifest}" "${only[@]}"
fi

predictor="${outdir}/model.path"
if in_stages 2; then
    log 2 "predictor file of ${model}"
    bench model --model "${model}" --outdir "${outdir}" > "${predictor}.tmp"
    mv "${predictor}.tmp" "${predictor}"
fi

if in_stages 3; then
    log 3 "scoring every test set"
    [ -f "${predictor}" ] || { echo "run.sh: ${predictor} missing: run stage 2 first" >&2; exit 1; }
    extra=()
    "${overwrite}" && extra=(--overwrite)
    bench score --model "$(cat "${predictor}")" --manifest "${manifest}" --outdir "${outdir}" --device "${device}" \
        --batch_size "${batch_size}" "${extra[@]}"
fi

if in_stages 4; then
    log 4 "table -> ${outdir}/mosbench.{md,csv,png}"
    bench table --manifest "${manifest}" --outdir "${outdir}" --title "${title:-MOS-Bench: ${model}}"
fi
