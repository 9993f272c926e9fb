# Environment of the recipes: the repository's virtual environment and root.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f "${REPO_ROOT}/.venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "${REPO_ROOT}/.venv/bin/activate"
fi
export PYTHONUNBUFFERED=1
