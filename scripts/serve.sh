#!/usr/bin/env bash
# Run the backup target locally: SFTP on 127.0.0.1:2222, WebDAV on 127.0.0.1:8080, the add-on's
# page on http://127.0.0.1:8099/, files in ./storage, keys and the generated password in ./.data.
# Extra flags go to backup-drive-server.
set -euo pipefail
# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
ensure_venv "${VENV}" -- requirements/server.txt
cd "${REPO_ROOT}"
# jemalloc when Debian's libjemalloc2 is installed, with the add-on's settings (its run script
# rootfs/etc/s6-overlay/s6-rc.d/backup-drive/run says why); DISABLE_JEMALLOC=1 opts out.
if [ -z "${DISABLE_JEMALLOC+x}" ]; then
    for jemalloc in /usr/lib/*-linux-gnu*/libjemalloc.so.2; do
        if [ -f "${jemalloc}" ]; then
            export LD_PRELOAD="${jemalloc}"
            export MALLOC_CONF="${MALLOC_CONF:-narenas:2,tcache_max:1048576,dirty_decay_ms:1000}"
            break
        fi
    done
fi
# The add-on itself serves its page to Home Assistant's ingress on another port; a --ui-port
# among the extra flags wins over this one.
exec "${VENV}/bin/backup-drive-server" --ui-port 8099 "$@"
