# The option parser of every recipe script (ESPnet's utils/parse_options.sh idea), sourced after the
# script has set its defaults:
#
#     stage=1                   # first stage to run
#     bvcc_root=                # the BVCC folder (DATA/wav, DATA/sets)
#     path_options="bvcc_root"  # options made absolute against the current directory
#     . "${REPO_ROOT}/egs/utils/parse_options.sh"
#
# Every variable set before this line can be given as `--name value` or `--name=value` (`--name-x` is
# `name_x`). An unknown option is an error, unless the script set `passthrough=()`: then unknown
# options are collected there, in order, for the script to hand on. Options named in `path_options` and
# given on the command line are made absolute against the current directory (defaults are left to the
# script); those in `file_options` only when they name an existing file (a checkpoint may also be a URL). An option whose default is `true` or `false` takes only those. `-h`/`--help` prints the script's header comment and its options with their defaults and
# comments, read off the assignment lines above the line that sources this file. Options that several
# scripts of a recipe share live in an options file (`local/<x>_options.sh`, ESPnet's db.sh idea) that
# each sources among its own (`. "${recipe}/local/<x>_options.sh"`); --help lists them there. Positional
# arguments are left in "$@".

__po_script="${BASH_SOURCE[1]:-$0}"

__po_usage() {
    # the header: the comment block after the shebang
    awk 'NR == 1 && /^#!/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${__po_script}"
    echo
    echo "Options (default in brackets):"
    # the option lines: `name=value  # comment` above the line that sources this file, and those of an
    # options file (`. "${recipe}/local/x_options.sh"`) where the script sources it
    awk -v dir="$(dirname "${__po_script}")" '
        function options(file, top,   line, comment, eq, name, value) {
            while ((getline line < file) > 0) {
                if (top && line ~ /parse_options\.sh/) break
                if (line ~ /^\. "\$\{(recipe|here)\}\/[^"]*_options\.sh"/) {
                    sub(/^\. "\$\{(recipe|here)\}\//, "", line); sub(/".*/, "", line)
                    options(dir "/" line, 0)
                    continue
                }
                if (line !~ /^[a-z][a-z0-9_]*=/) continue
                if (line ~ /^(path_options|file_options|passthrough|recipe|here)=/) continue
                comment = ""
                if (match(line, /[ \t]+# /)) {
                    comment = substr(line, RSTART + RLENGTH); line = substr(line, 1, RSTART - 1)
                }
                eq = index(line, "="); name = substr(line, 1, eq - 1); value = substr(line, eq + 1)
                gsub(/^["'\'']|["'\'']$/, "", value)
                printf "  --%-20s [%s] %s\n", name, value, comment
            }
            close(file)
        }
        BEGIN { options(ARGV[1], 1); exit }' "${__po_script}"
}

__po_given=
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) __po_usage; exit 0 ;;
        --*=*) __po_name="${1%%=*}"; __po_value="${1#*=}"; __po_shift=1 ;;
        --*)
            __po_name="$1"
            [ $# -ge 2 ] || { echo "$(basename "${__po_script}"): option $1 needs a value" >&2; exit 1; }
            __po_value="$2"; __po_shift=2 ;;
        *) break ;;
    esac
    __po_name="${__po_name#--}"
    __po_name="${__po_name//-/_}"
    if [[ "${__po_name}" =~ ^[a-z][a-z0-9_]*$ ]] && [ "${__po_name}" != passthrough ] \
            && declare -p "${__po_name}" > /dev/null 2>&1; then
        case "${!__po_name}" in  # an option whose default is true/false takes only true or false
            true|false) [[ "${__po_value}" =~ ^(true|false)$ ]] || {
                echo "$(basename "${__po_script}"): --${__po_name} takes true or false, not '${__po_value}'" >&2; exit 1; } ;;
        esac
        printf -v "${__po_name}" '%s' "${__po_value}"
        __po_given+=" ${__po_name} "
    elif declare -p passthrough > /dev/null 2>&1; then
        passthrough+=("--${__po_name}" "${__po_value}")
    else
        echo "$(basename "${__po_script}"): unknown option --${__po_name} (see --help)" >&2
        exit 1
    fi
    shift "${__po_shift}"
done

__po_abspath() {
    case "$1" in
        /*) echo "$1" ;;
        *) echo "${PWD}/$1" ;;
    esac
}
for __po_name in ${path_options:-} ${file_options:-}; do
    if [[ "${__po_given}" == *" ${__po_name} "* && -n "${!__po_name}" ]] \
            && [[ " ${path_options:-} " == *" ${__po_name} "* || -e "${!__po_name}" ]]; then
        printf -v "${__po_name}" '%s' "$(__po_abspath "${!__po_name}")"
    fi
done
unset __po_name __po_value __po_shift __po_given
