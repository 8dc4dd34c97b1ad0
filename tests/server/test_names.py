"""Every name the filesystem accepts can be uploaded, and no user file is taken for an upload."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

import pytest

from tests.backup_target import BackupTarget
from tests.server.conftest import Accounts, dav, sftp_client

# 255 bytes is the most ext4, exFAT and NTFS accept in one name; 238 and up failed before.
LONGEST = "b" * 251 + ".tar"
STAGING_LOOKALIKE = ".x.partial-0123abcd"


@pytest.mark.parametrize("name", [LONGEST, "é" * 125 + ".tar", STAGING_LOOKALIKE])
async def test_sftp_uploads_every_name(target: BackupTarget, name: str) -> None:
    async with sftp_client(target) as sftp:
        async with sftp.open(f"/backups/{name}", "wb") as upload:
            await upload.write(b"kept")
        assert name in await sftp.listdir("/backups")
    assert (target.storage / "backups" / name).read_bytes() == b"kept"
    assert "Traceback" not in target.log


@pytest.mark.parametrize("name", [LONGEST, STAGING_LOOKALIKE])
def test_webdav_uploads_every_name(target: BackupTarget, accounts: Accounts, name: str) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    path = f"/backups/{urllib.parse.quote(name)}"
    assert dav(target, "PUT", path, auth=alice, body=b"kept").status in (200, 201, 204)
    assert (target.storage / "backups" / name).read_bytes() == b"kept"


async def test_a_file_named_like_an_old_staging_name_survives_a_restart(
    start_target: Callable[..., BackupTarget],
) -> None:
    first = start_target()
    lookalike = first.storage / "backups" / STAGING_LOOKALIKE
    lookalike.write_bytes(b"a user's file")
    first.stop()
    second = start_target()
    assert lookalike.read_bytes() == b"a user's file"
    async with sftp_client(second) as sftp:
        assert STAGING_LOOKALIKE in await sftp.listdir("/backups")
