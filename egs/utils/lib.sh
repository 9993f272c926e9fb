# The shell library of every recipe script: logging, stage bookkeeping, dry runs, the pass-through refusal.
# A recipe sources, in this order, its own path.sh, this file and the option parser:
#
#     recipe="$(cd "$(dirname "$0")" && pwd)"
#     . "${recipe}/path.sh"              # REPO_ROOT, the virtual environment (egs/utils/path.sh)
#     . "${recipe}/../utils/lib.sh"      # these functions
#     stage=1 ...                        # the options, then:
#     . "${recipe}/../utils/parse_options.sh"
#
# What recipes may use of each other (tests/test_recipe_lib.py checks it): a recipe folder egs/<x>/ is its
# own. Its scripts source only its own files and egs/utils/; its Python imports only installed packages
# (distilmos, upstream_tokens, third-party) and the modules beside it in its own local/. A recipe may RUN
# another recipe's top-level scripts (egs/<other>/*.sh, the commands that recipe documents) as a user
# would: that is composition, as ESPnet recipes call shared scripts. It never sources, imports or runs
# anything under another recipe's local/ (internals that may change with that recipe) nor sources its
# path.sh. Code two recipes need lives in egs/utils/ (shell) or in the package (Python); what a recipe
# ships as a result (egs/demo/pretrained/) is data any recipe may read.
#
# Recipes call the package's console scripts (distilmos-predict, distilmos-tokens, distilmos-prep, ...: setup.py),
# not the python -m module paths behind them, which may move; tests/test_recipe_lib.py checks that too.

# log STAGE MESSAGE...: "14:02:11 [stage 3] MESSAGE" on stdout.
log() { echo "$(date '+%H:%M:%S') [stage $1] ${*:2}"; }

# in_stages N: whether stage N lies within --stage .. --stop_stage.
in_stages() { [ "$1" -ge "${stage}" ] && [ "$1" -le "${stop_stage}" ]; }

# todo N: stage N is within --stage .. --stop_stage and not yet done; a finished stage leaves the stamp
# ${stamp_dir}/.done.N (done_stage N), so that rerunning a killed recipe skips it. The recipe sets
# stamp_dir (its experiment or work folder) before the first call.
todo() {
    [ -n "${stamp_dir:-}" ] || { echo "${0##*/}: stamp_dir is not set (the folder of the .done.N stamps)" >&2; exit 1; }
    in_stages "$1" && [ ! -f "${stamp_dir}/.done.$1" ]
}
done_stage() { touch "${stamp_dir}/.done.$1"; }

# run COMMAND...: runs it; with dry_run=true prints it, shell-quoted, instead (the sweeps' --dry_run).
run() {
    if "${dry_run:-false}"; then
        printf '%q ' "$@"
        echo
    else
        "$@"
    fi
}

# announce MESSAGE...: "=== MESSAGE" before a run of a sweep; silent in a dry run, whose output is commands.
announce() { "${dry_run:-false}" || echo "=== $*"; }

# sweep_run MESSAGE COMMAND...: one run of a sweep: announces MESSAGE, then runs (or prints) COMMAND with the
# options collected for pass-through (passthrough=()) appended.
sweep_run() {
    announce "$1"
    run "${@:2}" "${passthrough[@]}"
}

# refuse_passthrough HINT NAME...: exit 1 when an option collected for pass-through (passthrough=()) is one
# the sweep sets per run; HINT says what to give instead.
refuse_passthrough() {
    local hint="$1" name i
    shift
    for name in "$@"; do
        for (( i = 0; i < ${#passthrough[@]}; i += 2 )); do  # names at even places, each followed by its value
            [ "${passthrough[i]}" != "--${name}" ] || {
                echo "${0##*/}: --${name} is set per run here; ${hint}" >&2
                exit 1
            }
        done
    done
}

# abspath PATH: PATH made absolute against the current directory (absolute paths are kept).
abspath() {
    case "$1" in
        /*) echo "$1" ;;
        *) echo "${PWD}/$1" ;;
    esac
}

# workdir_of DIR: creates DIR and prints its absolute path (a work folder every later step can cd around).
workdir_of() { mkdir -p "$1" && (cd "$1" && pwd); }

# elapsed: whole seconds since this file was sourced ("done in $(elapsed) s").
__lib_start=$(date +%s)
elapsed() { echo $(( $(date +%s) - __lib_start )); }
