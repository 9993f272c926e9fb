# Names shared by the scripts of this recipe (run.sh, run_table1.sh, run_ksweep.sh ...), so that every script finds the same
# experiment folders and token stores (a k-sweep point at k=200 is the Table 1 DistilMOS run).

# upstream_tag UPSTREAM [CKPT]: "wavlm_base"; "wavlm_local_mymodel" for a local checkpoint mymodel.pt.
upstream_tag() {
    local tag
    tag="$(basename "${2:-$1}" .pt)"
    [ "$1" = "${tag}" ] || tag="$1_${tag}"
    echo "${tag}" | tr ':/' '__'
}

# The variants registered with tokens (distilmos/registry.py), asked once here: run_name runs in
# command substitutions, where nothing it looked up would be kept for the next call.
token_variants=" $(distilmos-registry --token_variants | tr '\n' ' ') "

# run_name VARIANT UPSTREAM_TAG K SEED: k is part of the name only for the variants that use tokens.
run_name() {
    local k=
    case "${token_variants}" in *" $1 "*) k="_k$3" ;; esac
    echo "$1_$2${k}_seed$4"
}

# split_tag SPLIT SEED: "" for BVCC's official split, "_random811_seed0" for --split random811 --split_seed 0;
# the suffix of a split's data lists, token stores, feature caches and experiment folders.
split_tag() {
    [ "$1" = official ] || echo "_$1_seed$2"
}

# entry_name ENTRY, entry_ckpt ENTRY: the upstream and the checkpoint of an --upstreams entry NAME or
# NAME=CKPT (a local file made absolute; a URL or module:factory kept as it is; none: empty).
entry_name() { echo "${1%%=*}"; }
entry_ckpt() {
    local ckpt=
    case "$1" in *=*) ckpt="${1#*=}" ;; esac
    [ -n "${ckpt}" ] && [ -e "${ckpt}" ] && ckpt="$(abspath "${ckpt}")"
    echo "${ckpt}"
}

# use_upstream ENTRY: sets upstream, ckpt and tag of an --upstreams entry (NAME or NAME=CKPT), and
# upstream_args, its run.sh options: --upstream NAME, and --upstream_ckpt CKPT when it has one.
use_upstream() {
    upstream="$(entry_name "$1")"
    ckpt="$(entry_ckpt "$1")"
    tag="$(upstream_tag "${upstream}" "${ckpt}")"
    upstream_args=(--upstream "${upstream}")
    [ -z "${ckpt}" ] || upstream_args+=(--upstream_ckpt "${ckpt}")
}
