"""sshfs, a FUSE mount over our SFTP: what programs do to files through a mounted drive."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backup_target import BackupTarget
from tests.peers import require_root, require_tool
from tests.server.conftest import Accounts, partial_files, wait_until, write_known_hosts

BIG_FILE_BYTES = 100 * 1024 * 1024


def has_text(path: Path, text: str) -> bool:
    """Return whether `path` holds exactly `text`."""
    return path.is_file() and path.read_text() == text


def published(path: Path, text: str) -> bool:
    """Wait until the server has published `path` with `text`.

    FUSE sends a file's last release (SFTP CLOSE) after close() has returned to the program, so
    the upload is renamed into place a moment later; through the mount it is visible at once.
    """
    return wait_until(lambda: has_text(path, text))


@pytest.fixture
def mount(target: BackupTarget, accounts: Accounts, tmp_path: Path) -> Iterator[Path]:
    """Mount the target's storage root with sshfs as alice (key login); unmount afterwards."""
    require_root("sshfs needs /dev/fuse")
    sshfs = require_tool("sshfs", "sshfs")
    fusermount = require_tool("fusermount3", "fuse3")
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    alice = accounts.alice
    subprocess.run(
        [
            sshfs, f"{alice.username}@127.0.0.1:/", str(mount_point),
            "-p", str(target.sftp_port),
            "-F", "/dev/null",
            "-o", f"IdentityFile={alice.private_key}",
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={write_known_hosts(target, tmp_path)}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    try:
        yield mount_point
    finally:
        subprocess.run([fusermount, "-u", str(mount_point)], check=True, timeout=60)


def test_shell_redirection_creates_a_file(mount: Path, target: BackupTarget) -> None:
    # The issue's own words: `echo hi > MOUNT/new.txt` failed with "No such file or directory".
    result = subprocess.run(
        ["sh", "-c", f"echo hi > '{mount}/backups/new.txt'"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (mount / "backups" / "new.txt").read_text() == "hi\n"
    assert published(target.storage / "backups" / "new.txt", "hi\n")


def test_create_write_append_overwrite_rename_delete(mount: Path, target: BackupTarget) -> None:
    on_mount = mount / "backups" / "notes.txt"
    on_drive = target.storage / "backups" / "notes.txt"
    with on_mount.open("w") as created:
        created.write("first line\n")
        created.flush()
        # Stat while the file is still being written, as editors and `cp` do.
        assert os.stat(on_mount).st_size == len("first line\n")
    assert published(on_drive, "first line\n")

    with on_mount.open("r+") as edited:
        edited.seek(0)
        edited.write("FIRST")
    assert published(on_drive, "FIRST line\n")

    with on_mount.open("a") as appended:
        appended.write("second line\n")
    assert published(on_drive, "FIRST line\nsecond line\n")

    on_mount.write_text("replaced\n")
    assert published(on_drive, "replaced\n")

    renamed = on_mount.with_name("renamed.txt")
    on_mount.rename(renamed)
    assert not on_drive.exists()
    assert published(target.storage / "backups" / "renamed.txt", "replaced\n")

    renamed.unlink()
    assert sorted(os.listdir(mount / "backups")) == []
    assert sorted(p.name for p in (target.storage / "backups").iterdir()) == []
    assert wait_until(lambda: partial_files(target.storage) == [])


def sha256_of(path: Path) -> str:
    """Return the SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def test_copy_of_a_100_mib_file_is_identical(
    mount: Path, target: BackupTarget, tmp_path: Path
) -> None:
    original = tmp_path / "big.bin"
    with original.open("wb") as out:
        for _ in range(BIG_FILE_BYTES // (1024 * 1024)):
            out.write(os.urandom(1024 * 1024))
    shutil.copyfile(original, mount / "backups" / "big.bin")
    expected = sha256_of(original)
    assert sha256_of(mount / "backups" / "big.bin") == expected
    on_drive = target.storage / "backups" / "big.bin"
    assert wait_until(lambda: on_drive.is_file() and on_drive.stat().st_size == BIG_FILE_BYTES)
    assert sha256_of(on_drive) == expected
