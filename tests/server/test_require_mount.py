"""--require-mount: serve only while something is mounted at the storage root."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.backup_target import BackupTarget
from tests.peers import require_root
from tests.server.conftest import sftp_client


@pytest.fixture
def bind_mounted_storage(tmp_path: Path) -> Iterator[Path]:
    """Bind-mount a folder onto tmp_path/storage, both on the same filesystem, as /share is."""
    require_root("bind mounts")
    folder = tmp_path / "share" / "backup_drive"
    folder.mkdir(parents=True)
    storage = tmp_path / "storage"
    storage.mkdir()
    subprocess.run(["mount", "--bind", str(folder), str(storage)], check=True, timeout=30)
    try:
        yield folder
    finally:
        # Lazy, so a server that is still shutting down cannot keep the mount busy.
        subprocess.run(["umount", "-l", str(storage)], check=True, timeout=30)


async def test_a_bind_mount_within_one_filesystem_counts_as_mounted(
    bind_mounted_storage: Path, start_target: Callable[..., BackupTarget]
) -> None:
    target = start_target(extra_args=["--require-mount"])
    async with sftp_client(target) as sftp:
        assert "backups" in await sftp.listdir("/")
        async with sftp.open("/backups/on-the-share.tar", "wb") as upload:
            await upload.write(b"kept on the bind-mounted folder")
    written = bind_mounted_storage / "backups" / "on-the-share.tar"
    assert written.read_bytes() == b"kept on the bind-mounted folder"
    assert "not mounted" not in target.log


def test_nothing_mounted_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    server = BackupTarget(
        storage=tmp_path / "storage", data_dir=tmp_path / "data", extra_args=["--require-mount"]
    )
    with pytest.raises(RuntimeError, match="exited with"):
        server.start(timeout=30)
    assert "not mounted at" in server.log
    assert "Traceback" not in server.log
