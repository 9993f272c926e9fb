#!/usr/bin/env bash
# The offline recipes' tiny upstream (egs/demo, egs/compress) as egs/bvcc/run.sh options: prints
# "--upstream NAME --upstream_ckpt PATH".
#
#   egs/utils/tiny_upstream.sh pretrained|random WORKDIR SEED
#
# pretrained: the tiny HuBERT pretrained offline and shipped in egs/demo/pretrained (hubert_local);
# random: a randomly initialised tiny WavLM (wavlm_local), written into WORKDIR once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kind="$1" workdir="$2" seed="$3"
case "${kind}" in
    pretrained)
        ckpt="${here}/../demo/pretrained/tiny_hubert.pt"
        [ -f "${ckpt}" ] || { echo "missing ${ckpt}: make it with egs/pretrain_tiny/run.sh" >&2; exit 1; }
        echo "--upstream hubert_local --upstream_ckpt $(cd "$(dirname "${ckpt}")" && pwd)/tiny_hubert.pt" ;;
    random)
        ckpt="${workdir}/tiny_wavlm.pt"
        [ -f "${ckpt}" ] || distilmos-tiny-upstream --arch wavlm --size tiny --seed "${seed}" \
            --out "${ckpt}" >&2
        echo "--upstream wavlm_local --upstream_ckpt ${ckpt}" ;;
    *)
        echo "--upstream must be pretrained or random (got '${kind}')" >&2; exit 1 ;;
esac
