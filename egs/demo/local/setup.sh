# The set-up every script of this recipe shares, sourced after its options are parsed.

# demo_setup SIZE SEED: makes ${workdir} absolute (creating it), generates the stand-in corpora into
# <workdir>/corpus once (SIZE demo: the demo's; learning: 20 BVCC systems x 40 utterances, the learning
# checks', on which a model does not overfit within a few epochs as on the demo's 150 training utterances)
# and sets upstream_args to the run.sh options of the tiny upstream ${upstream} (pretrained or random).
# Scripts sharing a --workdir share its corpus and upstream.
demo_setup() {
    local sizes=()
    [ "$1" = learning ] && sizes=(--bvcc_systems 20 --bvcc_utts_per_system 40)
    workdir="$(workdir_of "${workdir}")"
    [ -f "${workdir}/corpus/record.json" ] || distilmos-standins bvcc_somos --out_dir "${workdir}/corpus" \
        --seed "$2" "${sizes[@]}"
    read -r -a upstream_args <<< "$("${REPO_ROOT}/egs/utils/tiny_upstream.sh" "${upstream}" "${workdir}" "$2")"
}
