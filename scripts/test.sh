#!/usr/bin/env bash
# Run every check: ruff, mypy --strict, shellcheck, hadolint, then the test suites against the
# real servers and clients; the integration suite runs on two Home Assistant releases (the oldest
# supported and the newest these machines can run). Extra arguments go to every pytest run (e.g.
# -k litmus, -x).
set -euo pipefail
# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
ensure_venv "${VENV}" -- requirements/server.txt requirements/test.txt
ensure_newest_ha_venv
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
# The quality scale's config-flow-test-coverage rule: config_flow.py fully covered, measured on the
# first release's run. Only a full run can tell; extra arguments (-k, a test file) skip the check.
coverage=()
if [ "$#" -eq 0 ]; then
    coverage=(--cov=custom_components.backup_drive.config_flow --cov-report=term-missing
        --cov-fail-under=100)
fi
# The integration suite once per Home Assistant release: the oldest supported, then the newest.
for venv in "${VENV}" "${NEWEST_HA_VENV}"; do
    versions="$("${venv}/bin/python" -c 'import importlib.metadata as m, platform
print("homeassistant", m.version("homeassistant") + ", Python", platform.python_version())')"
    echo "== tests: Home Assistant integration (${versions})"
    "${venv}/bin/python" -m pytest -p no:cacheprovider tests/integration "${coverage[@]}" "$@" \
        || status=$?
    coverage=()
done
exit "${status}"
