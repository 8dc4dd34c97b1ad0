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

# The server and add-on suites run without Home Assistant's pytest plugin: it blocks sockets and
# watches for threads, both of which those suites use on purpose.
echo "== tests: server and add-on"
status=0
python -m pytest -p no:homeassistant -p no:cacheprovider tests/server tests/addon "$@" || status=$?
echo "== tests: Home Assistant integration"
# The quality scale's config-flow-test-coverage rule: config_flow.py fully covered. Only a full
# run can tell; extra arguments (-k, a test file) skip the check.
coverage=()
if [ "$#" -eq 0 ]; then
    coverage=(--cov=custom_components.backup_drive.config_flow --cov-report=term-missing
        --cov-fail-under=100)
fi
python -m pytest -p no:cacheprovider tests/integration "${coverage[@]}" "$@" || status=$?
exit "${status}"
