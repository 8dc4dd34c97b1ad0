"""The add-on's discovery payload as BRIEF.md section 5 documents it: both halves test against it.

The add-on sends these keys and the integration's discovery flow reads them. Either side may
add keys; neither may rename or drop one.
"""

from __future__ import annotations

from typing import Any, Final

DOCUMENTED_PAYLOAD: Final[dict[str, Any]] = {
    "host": "a0d7b954-backup-drive",
    "port": 2222,
    "username": "homeassistant",
    "password": "documented-example-password",
    "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9CaClHq2Of77f7NFudzAC1Kn8OwTOkWgq9cX2w5OWH",
    "path": "/backups",
}
