#!/usr/bin/env bash
# Run every check: ruff, mypy --strict, shellcheck, hadolint, then the test suites against the
# real servers and clients. Extra arguments go to both pytest runs (e.g. -k litmus, -x).
set -euo pipefail
# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
ensure_venv requirements/server.txt requirements/test.txt
ensure_debian_peers
cd "${REPO_ROOT}"
export PATH="${VENV}/bin:${PATH}"

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy --strict"
mypy addon integration bench tests
echo "== shellcheck"
mapfile -t shell_scripts < <(git ls-files scripts .ci 'rootfs/*' | while read -r f; do
    head -n1 "$f" | grep -qE '^#!.*(bash|sh)' && echo "$f"; done)
shellcheck -x "${shell_scripts[@]}"
if [ -f Dockerfile ]; then
    echo "== hadolint"
    hadolint Dockerfile
fi

# The server, add-on and page suites run without Home Assistant's pytest plugin: it blocks
# sockets and watches for threads, both of which those suites use on purpose.
echo "== tests: server, add-on and page"
status=0
python -m pytest -p no:homeassistant -p no:cacheprovider tests/server tests/addon tests/web_page "$@" || status=$?
echo "== tests: Home Assistant integration"
python -m pytest -p no:cacheprovider tests/integration "$@" || status=$?
exit "${status}"
