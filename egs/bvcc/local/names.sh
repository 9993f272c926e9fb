# Names shared by run.sh, run_table1.sh and run_ksweep.sh, so that every script finds the same
# experiment folders and token stores (a k-sweep point at k=200 is the Table 1 DistilMOS run).

# upstream_tag UPSTREAM [CKPT]: "wavlm_base"; "wavlm_local_mymodel" for a local checkpoint mymodel.pt.
upstream_tag() {
    local tag
    tag="$(basename "${2:-$1}" .pt)"
    [ "$1" = "${tag}" ] || tag="$1_${tag}"
    echo "${tag}" | tr ':/' '__'
}

# run_name VARIANT UPSTREAM_TAG K SEED: k is part of the name only for the variant that uses tokens.
run_name() {
    local k=
    [ "$1" = distilmos ] && k="_k$3"
    echo "$1_$2${k}_seed$4"
}

# abspath PATH: PATH made absolute against the current directory (absolute paths are kept).
abspath() {
    case "$1" in
        /*) echo "$1" ;;
        *) echo "${PWD}/$1" ;;
    esac
}
