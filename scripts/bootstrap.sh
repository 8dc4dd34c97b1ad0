#!/usr/bin/env bash
# shellcheck shell=bash
# Shared set-up for scripts/serve.sh and scripts/test.sh: finds a Python >= 3.13, keeps .venv in
# step with the pinned requirements, and (for the tests) installs the Debian peers they talk to.
# Sourced, not run: it defines functions and REPO_ROOT.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REPO_ROOT}/.venv"

die() {
    echo "error: $*" >&2
    exit 1
}

python_is_new_enough() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' >/dev/null 2>&1
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

# ensure_venv FILE...: create .venv if needed and install the given requirement files plus this
# project (editable). A stamp of the inputs' checksums makes a second run a no-op.
ensure_venv() {
    local python stamp wanted
    wanted="$(cd "${REPO_ROOT}" && cat "$@" pyproject.toml | sha256sum | cut -d' ' -f1)"
    stamp="${VENV}/.backup-drive-stamp"
    if [ -x "${VENV}/bin/python" ] && python_is_new_enough "${VENV}/bin/python"; then
        if [ -f "${stamp}" ] && grep -qx "${wanted}" "${stamp}"; then
            return 0
        fi
    else
        python="$(find_python)" || die "no Python >= 3.13 found (looked on PATH, in ~/.pyenv/versions and /usr/bin/python3.13). Install python3.13 or set BACKUP_DRIVE_PYTHON=/path/to/python3.13."
        echo "Creating ${VENV} with ${python}"
        rm -rf "${VENV}"
        "${python}" -m venv "${VENV}" || die "could not create a virtual environment with ${python} (on Debian: apt-get install python3.13-venv)"
    fi
    echo "Installing pinned requirements into ${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    local args=()
    local file
    for file in "$@"; do
        args+=(-r "${REPO_ROOT}/${file}")
    done
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" \
        || die "pip could not install ${*}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "${REPO_ROOT}" \
        || die "pip could not install backup-drive-server itself"
    echo "${wanted}" >"${stamp}"
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
    "mkfs.vfat:dosfstools"
    "mkfs.exfat:exfatprogs"
    "mount.exfat-fuse:exfat-fuse"
    "mkfs.ntfs:ntfs-3g"
    "fusefat:fusefat"
    "apparmor_parser:apparmor"
)

missing_peer_packages() {
    local entry cmd pkg
    for entry in "${DEBIAN_PEERS[@]}"; do
        cmd="${entry%%:*}"
        pkg="${entry#*:}"
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
