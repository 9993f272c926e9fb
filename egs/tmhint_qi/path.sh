# This recipe's environment: REPO_ROOT, the repository's virtual environment, unbuffered Python.
. "$(dirname "${BASH_SOURCE[0]}")/../utils/path.sh"
