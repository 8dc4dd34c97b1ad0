"""A full drive fails the upload with a clear error and keeps what was already there."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.backup_target import BackupTarget
from tests.peers import require_root
from tests.server.conftest import (
    Accounts,
    dav,
    destination,
    eventually,
    partial_files,
    sftp_client,
)

pytestmark = pytest.mark.root

DRIVE_SIZE = 8 * 1024 * 1024
OLD_BACKUP = os.urandom(1024 * 1024)
TOO_BIG = os.urandom(2 * DRIVE_SIZE)


@pytest.fixture
def small_drive(tmp_path: Path) -> Iterator[Path]:
    """Mount an 8 MiB tmpfs as the storage root, holding one earlier backup."""
    require_root("mounting a small tmpfs as a drive that fills up")
    storage = tmp_path / "storage"
    storage.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DRIVE_SIZE}", "backup-drive-test", str(storage)],
        check=True,
        timeout=30,
    )
    try:
        (storage / "backups").mkdir()
        (storage / "backups" / "old.tar").write_bytes(OLD_BACKUP)
        yield storage
    finally:
        # Lazy, so a server that is still shutting down cannot keep the mount alive.
        subprocess.run(["umount", "-l", str(storage)], check=True, timeout=30)


def assert_drive_as_before(storage: Path) -> None:
    """Assert the earlier backup is intact and nothing else (no temp file) takes space."""
    assert (storage / "backups" / "old.tar").read_bytes() == OLD_BACKUP
    assert partial_files(storage) == []
    assert shutil.disk_usage(storage).free > DRIVE_SIZE - 2 * len(OLD_BACKUP)


async def test_sftp_upload_to_a_full_drive(
    small_drive: Path,
    start_target: Callable[..., BackupTarget],
    accounts: Accounts,
    tmp_path: Path,
) -> None:
    target = start_target()
    local = tmp_path / "too-big.tar"
    local.write_bytes(TOO_BIG)
    alice = accounts.alice
    async with sftp_client(target, alice.username, key=alice.private_key) as sftp:
        for name in ("new.tar", "old.tar"):
            with pytest.raises(asyncssh.SFTPError) as refused:
                await sftp.put(str(local), f"/backups/{name}")
            assert "space" in str(refused.value).lower(), refused.value
    assert await eventually(lambda: partial_files(small_drive) == [])
    assert_drive_as_before(small_drive)
    assert not (small_drive / "backups" / "new.tar").exists()


def test_webdav_put_to_a_full_drive(
    small_drive: Path, start_target: Callable[..., BackupTarget], accounts: Accounts
) -> None:
    target = start_target()
    alice = (accounts.alice.username, accounts.alice.password)
    for name in ("new.tar", "old.tar"):
        try:
            response = dav(target, "PUT", f"/backups/{name}", auth=alice, body=TOO_BIG)
        except ConnectionError:
            # Refusing before reading the whole body is fine; the drive must still be as before.
            pass
        else:
            assert response.status == 507, (response.status, response.text)
    assert_drive_as_before(small_drive)
    assert not (small_drive / "backups" / "new.tar").exists()
    # With the failed uploads gone, a backup that fits still goes through.
    fits = os.urandom(2 * 1024 * 1024)
    assert dav(target, "PUT", "/backups/fits.tar", auth=alice, body=fits).status in {201, 204}
    assert (small_drive / "backups" / "fits.tar").read_bytes() == fits


def test_webdav_copy_to_a_full_drive(
    small_drive: Path, start_target: Callable[..., BackupTarget], accounts: Accounts
) -> None:
    big = os.urandom(4 * 1024 * 1024)
    (small_drive / "backups" / "big.tar").write_bytes(big)
    target = start_target()
    alice = (accounts.alice.username, accounts.alice.password)
    response = dav(
        target,
        "COPY",
        "/backups/big.tar",
        auth=alice,
        headers=destination(target, "/backups/copy.tar"),
    )
    assert response.status == 507, (response.status, response.text)
    assert not (small_drive / "backups" / "copy.tar").exists()
    assert (small_drive / "backups" / "big.tar").read_bytes() == big
    (small_drive / "backups" / "big.tar").unlink()
    assert_drive_as_before(small_drive)
    # With room again, the same copy goes through whole.
    (small_drive / "backups" / "small.tar").write_bytes(b"small")
    headers = destination(target, "/backups/copy.tar")
    assert dav(target, "COPY", "/backups/small.tar", auth=alice, headers=headers).status == 201
    assert (small_drive / "backups" / "copy.tar").read_bytes() == b"small"


@pytest.fixture
def full_mount_inside(tmp_path: Path) -> Iterator[Path]:
    """Mount a nearly full 8 MiB tmpfs at storage/backups/other: another filesystem in the root."""
    require_root("mounting a small tmpfs inside the storage root")
    other = tmp_path / "storage" / "backups" / "other"
    other.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DRIVE_SIZE}", "backup-drive-test", str(other)],
        check=True,
        timeout=30,
    )
    try:
        (other / "filler.bin").write_bytes(os.urandom(DRIVE_SIZE - 2 * 1024 * 1024))
        yield other
    finally:
        subprocess.run(["umount", "-l", str(other)], check=True, timeout=30)


def test_webdav_move_to_a_full_filesystem(
    full_mount_inside: Path, start_target: Callable[..., BackupTarget], accounts: Accounts
) -> None:
    target = start_target()
    big = os.urandom(4 * 1024 * 1024)
    source = target.storage / "backups" / "big.tar"
    source.write_bytes(big)
    alice = (accounts.alice.username, accounts.alice.password)
    headers = destination(target, "/backups/other/big.tar")
    response = dav(target, "MOVE", "/backups/big.tar", auth=alice, headers=headers)
    assert response.status == 507, (response.status, response.text)
    assert source.read_bytes() == big
    assert not (full_mount_inside / "big.tar").exists()
    assert partial_files(full_mount_inside) == []
    # A file that fits moves across whole, and leaves its old place.
    (target.storage / "backups" / "small.tar").write_bytes(b"small")
    headers = destination(target, "/backups/other/small.tar")
    assert dav(target, "MOVE", "/backups/small.tar", auth=alice, headers=headers).status == 201
    assert (full_mount_inside / "small.tar").read_bytes() == b"small"
    assert not (target.storage / "backups" / "small.tar").exists()
