#!/usr/bin/env bash
# Run the backup target locally: SFTP on 127.0.0.1:2222, WebDAV on 127.0.0.1:8080, files in
# ./storage, keys and the generated password in ./.data. Extra flags go to backup-drive-server.
set -euo pipefail
# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
ensure_venv "${VENV}" -- requirements/server.txt
cd "${REPO_ROOT}"
exec "${VENV}/bin/backup-drive-server" "$@"
