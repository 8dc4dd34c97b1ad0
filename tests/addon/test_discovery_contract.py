"""The add-on's discovery payload has exactly the keys BRIEF.md section 5 documents."""

from __future__ import annotations

from pathlib import Path

from backup_drive_addon.discovery import PAYLOAD_KEYS, build_config
from backup_drive_server.accounts import PASSWORD_FILE
from backup_drive_server.host_key import PUBLIC_KEY_FILE
from tests.discovery_payload_contract import DOCUMENTED_PAYLOAD


def test_the_payload_matches_the_documented_one(tmp_path: Path) -> None:
    """build_config sends the documented keys, with the documented value types."""
    (tmp_path / PASSWORD_FILE).write_text("a-password\n")
    (tmp_path / PUBLIC_KEY_FILE).write_text(DOCUMENTED_PAYLOAD["host_key"] + " root@backup-drive\n")
    config = dict(build_config(tmp_path, DOCUMENTED_PAYLOAD["host"], DOCUMENTED_PAYLOAD["port"]))
    assert set(config) == set(DOCUMENTED_PAYLOAD) == set(PAYLOAD_KEYS)
    for key, value in DOCUMENTED_PAYLOAD.items():
        assert type(config[key]) is type(value), key
    assert config["username"] == DOCUMENTED_PAYLOAD["username"]
    assert config["path"] == DOCUMENTED_PAYLOAD["path"]
