# Names shared by run.sh, run_table1.sh and run_ksweep.sh, so that every script finds the same
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
token_variants=" $(python -m distilmos.registry --token_variants | tr '\n' ' ') "

# run_name VARIANT UPSTREAM_TAG K SEED: k is part of the name only for the variants that use tokens.
run_name() {
    local k=
    case "${token_variants}" in *" $1 "*) k="_k$3" ;; esac
    echo "$1_$2${k}_seed$4"
}

# abspath PATH: PATH made absolute against the current directory (absolute paths are kept).
abspath() {
    case "$1" in
        /*) echo "$1" ;;
        *) echo "${PWD}/$1" ;;
    esac
}

# split_tag SPLIT SEED: "" for BVCC's official split, "_random811_seed0" for --split random811 --split_seed 0;
# the suffix of a split's data lists, token stores, feature caches and experiment folders.
split_tag() {
    [ "$1" = official ] || echo "_$1_seed$2"
}
