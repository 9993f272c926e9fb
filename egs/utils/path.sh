# The environment of every recipe (ESPnet's path.sh), sourced by each recipe's own egs/<x>/path.sh:
# REPO_ROOT, the repository's virtual environment (unless one is active already), unbuffered Python.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f "${REPO_ROOT}/.venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "${REPO_ROOT}/.venv/bin/activate"
fi
export PYTHONUNBUFFERED=1
