#!/usr/bin/env bash
# shellcheck shell=bash
# Shared set-up for scripts/serve.sh and scripts/test.sh: finds a Python >= 3.13, keeps .venv in
# step with the pinned requirements (and, for the tests, .venv-ha-2026.2 with a newer Home
# Assistant), and installs the Debian peers the tests talk to.
# Sourced, not run: it defines functions and REPO_ROOT.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # read by the scripts that source this file
VENV="${REPO_ROOT}/.venv"
# The integration suite also runs on the newest Home Assistant these machines can run (README,
# "Home Assistant versions"). Moving to a newer release means changing these three lines.
NEWEST_HA_VENV="${REPO_ROOT}/.venv-ha-2026.2"
NEWEST_HA_REQUIREMENTS=requirements/test-ha-2026.2.txt
NEWEST_HA_REQUIRES_PYTHON=3.13.2 # Requires-Python of homeassistant 2026.2.3

die() {
    echo "error: $*" >&2
    exit 1
}

# python_is_at_least PYTHON VERSION: whether PYTHON runs and is VERSION (e.g. 3.13.2) or newer.
python_is_at_least() {
    "$1" -c 'import sys; sys.exit(sys.version_info[:3] < tuple(map(int, sys.argv[1].split("."))))' \
        "$2" >/dev/null 2>&1
}

python_is_new_enough() {
    python_is_at_least "$1" 3.13
}

# Home Assistant 2025.4 needs Python 3.13; pyenv shims on PATH may point at an older default,
# so every candidate is asked for its version rather than trusted by name.
find_python() {
    local candidate
    for candidate in "${BACKUP_DRIVE_PYTHON:-}" python3.14 python3.13 python3 \
        "${HOME}"/.pyenv/versions/3.1[3-9]*/bin/python3 /usr/bin/python3.13 /usr/local/bin/python3.13; do
        [ -n "${candidate}" ] || continue
        if command -v "${candidate}" >/dev/null 2>&1 && python_is_new_enough "${candidate}"; then
            command -v "${candidate}"
            return 0
        fi
    done
    return 1
}

# venv_base_python DIR: the Python that DIR runs on: its own when usable, else the one
# ensure_venv would create it with.
venv_base_python() {
    if [ -x "$1/bin/python" ] && python_is_new_enough "$1/bin/python"; then
        echo "$1/bin/python"
    else
        find_python
    fi
}

# ensure_venv DIR [PIP_FLAG...] -- FILE...: create the virtual environment DIR if needed and
# install the given requirement files (paths relative to the repository) plus this project
# (editable), passing PIP_FLAGs to pip. A stamp of the inputs' checksums, flags included, makes a
# second run a no-op.
ensure_venv() {
    local venv="$1"
    shift
    local -a pip_flags=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
        pip_flags+=("$1")
        shift
    done
    [ "$#" -gt 1 ] || die "ensure_venv ${venv}: no requirement files after --"
    shift
    local python stamp wanted
    # Without flags the stamp is the checksum it always was, so existing environments stay valid.
    wanted="$(cd "${REPO_ROOT}" && {
        cat "$@" pyproject.toml
        [ "${#pip_flags[@]}" -eq 0 ] || echo "pip flags: ${pip_flags[*]}"
    } | sha256sum | cut -d' ' -f1)"
    stamp="${venv}/.backup-drive-stamp"
    python="$(venv_base_python "${venv}")" || die "no Python >= 3.13 found (looked on PATH, in ~/.pyenv/versions and /usr/bin/python3.13). Install python3.13 or set BACKUP_DRIVE_PYTHON=/path/to/python3.13."
    if [ "${python}" = "${venv}/bin/python" ]; then
        if [ -f "${stamp}" ] && grep -qx "${wanted}" "${stamp}"; then
            return 0
        fi
    else
        echo "Creating ${venv} with ${python}"
        rm -rf "${venv}"
        "${python}" -m venv "${venv}" || die "could not create a virtual environment with ${python} (on Debian: apt-get install python3.13-venv)"
    fi
    echo "Installing pinned requirements into ${venv}"
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    local args=()
    local file
    for file in "$@"; do
        args+=(-r "${REPO_ROOT}/${file}")
    done
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_flags[@]}" "${args[@]}" \
        || die "pip could not install ${*} into ${venv}"
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "${REPO_ROOT}" \
        || die "pip could not install backup-drive-server itself into ${venv}"
    echo "${wanted}" >"${stamp}"
}

# ensure_newest_ha_venv: NEWEST_HA_VENV with the newest Home Assistant and the server's pins.
ensure_newest_ha_venv() {
    local python
    local -a pip_flags=()
    python="$(venv_base_python "${NEWEST_HA_VENV}")" || die "no Python >= 3.13 found for ${NEWEST_HA_VENV}"
    # homeassistant 2026.2 declares Python >= 3.13.2 but installs and passes our integration suite
    # on 3.13.0 (pyenv's, on these machines), and 2026.3+ needs 3.14, which no machine here has.
    # Only an older Python gets the flag, so that pip still checks everything on a new enough one.
    if ! python_is_at_least "${python}" "${NEWEST_HA_REQUIRES_PYTHON}"; then
        pip_flags+=(--ignore-requires-python)
    fi
    ensure_venv "${NEWEST_HA_VENV}" "${pip_flags[@]}" -- requirements/server.txt "${NEWEST_HA_REQUIREMENTS}"
}

# Command -> Debian package, for the real peers the tests talk to.
readonly -a DEBIAN_PEERS=(
    "sftp:openssh-client"
    "scp:openssh-client"
    "ssh-keygen:openssh-client"
    "/usr/sbin/sshd:openssh-server"
    "rclone:rclone"
    "sshfs:sshfs"
    "fusermount3:fuse3"
    "litmus:litmus"
    "curl:curl"
    "shellcheck:shellcheck"
    "losetup:mount"
    "mkfs.ext4:e2fsprogs"
    "inotifywait:inotify-tools"
    "mkfs.vfat:dosfstools"
    "mkfs.exfat:exfatprogs"
    "mount.exfat-fuse:exfat-fuse"
    "mkfs.ntfs:ntfs-3g"
    "fusefat:fusefat"
    "apparmor_parser:apparmor"
    "chromium:chromium"
    "libjemalloc.so.2:libjemalloc2"
)

missing_peer_packages() {
    local entry cmd pkg
    for entry in "${DEBIAN_PEERS[@]}"; do
        cmd="${entry%%:*}"
        pkg="${entry#*:}"
        case "${cmd}" in
        lib*.so*)
            /sbin/ldconfig -p 2>/dev/null | grep -qF "${cmd} " || echo "${pkg}"
            continue
            ;;
        esac
        command -v "${cmd}" >/dev/null 2>&1 || [ -x "${cmd}" ] || [ -x "/usr/sbin/${cmd}" ] || [ -x "/sbin/${cmd}" ] || echo "${pkg}"
    done | sort -u
}

ensure_debian_peers() {
    local missing
    missing="$(missing_peer_packages)"
    [ -n "${missing}" ] || return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing Debian packages for the tests: $(echo "${missing}" | tr '\n' ' ')"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || die "apt-get update failed"
        # shellcheck disable=SC2086 # one package per word is what apt-get wants
        apt-get install -y -qq --no-install-recommends ${missing} >/dev/null || die "apt-get could not install: ${missing}"
    else
        echo "warning: missing Debian packages (run as root to install them): $(echo "${missing}" | tr '\n' ' ')" >&2
    fi
}
