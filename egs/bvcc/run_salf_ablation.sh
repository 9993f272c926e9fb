#!/usr/bin/env bash
# SALF-MOS's ablations on BVCC, one table: the inputs of the paper's Table III (wav2vec, LFCC, MFCC,
# X-vector; and s3prl's fbank) and the depths of its Fig. 5 (2, 3, 4, 5 blocks on the wav2vec input).
#
#   ./run_salf_ablation.sh --bvcc_root /corpora/main --somos_root /corpora/somos [--upstreams "wavlm_base"]
#
# Calls run.sh --variant salf_mos (upstream frozen, its last layer) once per (input, seed) into
# <exproot>/<variant>_<upstream>_seed<seed><split suffix>, the names run.sh uses, and once per other depth
# and seed into <exproot>/<variant>_<ssl upstream>_depth<d>_seed<seed><split suffix> (depth 4, the paper's, is
# the input row's run), so a finished run is not trained again and a killed ablation continues where it
# stopped. Then local/salf_ablation.py writes <exproot>/salf_ablation.md and .csv (seeds averaged, the
# paper's numbers beside ours). Inputs: --ssl_upstream (the toolkit's reading of the paper's "wav2vec":
# wav2vec 2.0 Base), --baselines (feature upstreams that need no weights), --embedding (the X-vector row:
# an utterance embedding, one frame per utterance; skipped when empty), then any --upstreams (hub names, or
# NAME=CKPT for a local checkpoint). By default every run uses the paper's random 8:1:1 split of BVCC
# (--split official for the challenge's lists).
# Options that are not listed below go to run.sh unchanged (--batch_size, --datadir ...).
# --dry_run prints the commands instead of running them.
set -euo pipefail
recipe="$(cd "$(dirname "$0")" && pwd)"
. "${recipe}/path.sh"
. "${recipe}/../utils/lib.sh"
. "${recipe}/local/sweep_options.sh"  # the run names; --bvcc_root, --somos_root, --device, --exproot, --dry_run

ssl_upstream=wav2vec2_base_960  # the paper's "wav2vec" row (read as wav2vec 2.0 Base); NAME=CKPT for a local one
baselines="lfcc mfcc fbank"  # feature upstreams without weights: Table III's LFCC and MFCC, and s3prl's fbank
embedding=ge2e_dvector     # the X-vector row: ge2e_dvector, utterance_embedding=MODULE:FACTORY, or empty
upstreams=                 # more upstreams to compare (hub names, or NAME=CKPT)
depths="2 3 4 5"           # Fig. 5: depths (blocks) on --ssl_upstream; 4, the paper's, is every input row's
variant=salf_mos           # salf_mos (one layer) or salf_mos_wsum (weighted sum of all layers)
seeds="0"                  # training seeds; the table averages them
split=random811            # BVCC split of every run: random811 (the paper's 8:1:1) or official
split_seed=0               # seed of --split random811
overrides=                 # more s3prl -o overrides for every run, joined with ",,"
. "${recipe}/../utils/parse_options.sh"
refuse_passthrough "use this script's options" variant upstream upstream_ckpt seed expdir
case "${variant}" in
    salf_mos|salf_mos_wsum) ;;
    *) echo "--variant must be salf_mos or salf_mos_wsum" >&2; exit 1 ;;
esac
case "${split}" in official|random811) ;; *) echo "--split must be official or random811" >&2; exit 1 ;; esac
for depth in ${depths}; do
    [[ "${depth}" =~ ^[1-9][0-9]*$ ]] || { echo "--depths takes positive integers, not '${depth}'" >&2; exit 1; }
done
split_suffix="$(split_tag "${split}" "${split_seed}")"

runs=()
# train ENTRY DEPTH EXPDIR [run.sh options]: one run.sh per seed
train() {
    local entry="$1" depth="$2" name="$3" upstream ckpt tag o seed expdir
    shift 3
    use_upstream "${entry}"
    o="config.downstream_expert.modelrc.depth=${depth}"
    [ -n "${overrides}" ] && o+=",,${overrides}"
    for seed in ${seeds}; do
        expdir="${exproot}/${name//SEED/${seed}}${split_suffix}"
        announce "${variant} ${tag} depth ${depth} seed ${seed} -> ${expdir}"
        run "${recipe}/run.sh" --bvcc_root "${bvcc_root}" --somos_root "${somos_root}" \
            "${upstream_args[@]}" --variant "${variant}" --seed "${seed}" \
            --split "${split}" --split_seed "${split_seed}" --overrides "${o}" --device "${device}" \
            --expdir "${expdir}" "${passthrough[@]}" "$@"
        runs+=("${tag}:${depth}:${expdir}")
    done
}

# the inputs (Table III), at the paper's depth
for entry in ${ssl_upstream} ${baselines} ${embedding} ${upstreams}; do
    use_upstream "${entry}"
    extra=()
    # one vector per utterance: nothing to cache (a --feature_cache true given for the other rows is undone)
    [ "${entry}" = "${embedding}" ] && extra=(--feature_cache false)
    train "${entry}" 4 "$(run_name "${variant}" "${tag}" 0 SEED)" "${extra[@]}"
done
# the depths (Fig. 5) on the SSL input; depth 4 is its input row above
ssl_tag="$(upstream_tag "$(entry_name "${ssl_upstream}")" "$(entry_ckpt "${ssl_upstream}")")"
for depth in ${depths}; do
    [ "${depth}" = 4 ] && continue
    train "${ssl_upstream}" "${depth}" "${variant}_${ssl_tag}_depth${depth}_seedSEED"
done

embedding_tag=
[ -n "${embedding}" ] && embedding_tag="$(upstream_tag "$(entry_name "${embedding}")" "$(entry_ckpt "${embedding}")")"
run python "${recipe}/local/salf_ablation.py" --runs "${runs[@]}" --ssl "${ssl_tag}" --embedding "${embedding_tag}" \
    --out "${exproot}/salf_ablation"
