#!/usr/bin/env bash
# The learning checks' generated corpus (20 systems x 40 utterances in the BVCC layout, and the SOMOS one),
# written into WORKDIR/corpus once; the checks share it when they share WORKDIR.
#
#   local/learning_corpus.sh WORKDIR SEED
#
# Larger than the demo's: with its 150 training utterances a model overfits within a few epochs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
workdir="$1" seed="$2"
[ -f "${workdir}/corpus/record.json" ] || python -m distilmos.standins bvcc_somos --out_dir "${workdir}/corpus" \
    --seed "${seed}" --bvcc_systems 20 --bvcc_utts_per_system 40
