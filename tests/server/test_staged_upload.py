"""The one set of failure rules both servers stage uploads by, checked without a server."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from backup_drive_server.staged_upload import (
    STAGING_FOLDER,
    StagedUpload,
    UploadNotSavedError,
)
from backup_drive_server.storage_root import StorageRoot


@pytest.fixture
def storage(tmp_path: Path) -> StorageRoot:
    """Return a prepared storage root in a temporary folder."""
    root = StorageRoot(tmp_path / "storage")
    root.prepare()
    return root


def names_in(folder: Path) -> list[str]:
    """List a folder's names, hidden ones included."""
    return sorted(path.name for path in folder.iterdir())


def test_commit_publishes_under_the_final_name(storage: StorageRoot) -> None:
    final = storage.path / "backups" / "backup.tar"
    upload = StagedUpload(storage, final, who="test")
    upload.append(b"first ")
    upload.append(b"second")
    assert upload.staging.parent == storage.path / STAGING_FOLDER
    assert names_in(final.parent) == []
    upload.commit(expected_size=12)
    assert final.read_bytes() == b"first second"
    assert names_in(final.parent) == ["backup.tar"]
    assert names_in(storage.path / STAGING_FOLDER) == []
    assert storage.discard_all_staging() == 0


@pytest.mark.parametrize(
    "name",
    [".x.partial-0123abcd", "n" * 255, ".backup.tar.partial-deadbeef", "é" * 127],
    ids=["staging-like", "255-bytes", "old-pattern", "254-bytes-utf8"],
)
def test_every_name_the_filesystem_accepts_can_be_uploaded(storage: StorageRoot, name: str) -> None:
    final = storage.path / "backups" / name
    upload = StagedUpload(storage, final, who="test")
    upload.append(b"kept")
    upload.commit(expected_size=4)
    assert final.read_bytes() == b"kept"
    # A user's file that looks like an upload in progress survives the next start.
    StorageRoot(storage.path).prepare()
    assert final.read_bytes() == b"kept"


def test_start_empties_the_staging_folder(storage: StorageRoot) -> None:
    leftover = storage.path / STAGING_FOLDER / "0123456789abcdef.upload"
    leftover.write_bytes(b"interrupted by a power cut")
    StorageRoot(storage.path).prepare()
    assert names_in(storage.path / STAGING_FOLDER) == []
    assert names_in(storage.path) == [STAGING_FOLDER, "backups"]


@pytest.mark.parametrize("existing", [None, b"the previous backup"], ids=["new", "overwrite"])
def test_discard_leaves_nothing(storage: StorageRoot, existing: bytes | None) -> None:
    final = storage.path / "backups" / "backup.tar"
    if existing is not None:
        final.write_bytes(existing)
    upload = StagedUpload(storage, final, who="test")
    upload.write_at(0, b"partial")
    upload.discard("connection lost")
    upload.discard("again")
    assert names_in(final.parent) == (["backup.tar"] if existing else [])
    if existing is not None:
        assert final.read_bytes() == existing


def test_a_failed_write_is_never_published(storage: StorageRoot) -> None:
    final = storage.path / "backups" / "backup.tar"
    upload = StagedUpload(storage, final, who="test")
    upload.write_at(0, b"good")
    with pytest.raises(OSError) as failed:
        upload.write_at(-1, b"bad")
    assert failed.value.errno == errno.EINVAL
    with pytest.raises(
        UploadNotSavedError, match=re.escape("nothing was saved as /backups/backup.tar")
    ):
        upload.commit()
    assert names_in(final.parent) == []


def test_a_short_upload_is_never_published(storage: StorageRoot) -> None:
    final = storage.path / "backups" / "backup.tar"
    upload = StagedUpload(storage, final, who="test")
    upload.append(b"12345")
    with pytest.raises(UploadNotSavedError, match="5 of 10 bytes"):
        upload.commit(expected_size=10)
    assert names_in(final.parent) == []


def test_a_folder_at_the_final_name_is_kept(storage: StorageRoot) -> None:
    final = storage.path / "backups" / "backup.tar"
    upload = StagedUpload(storage, final, who="test")
    upload.append(b"data")
    final.mkdir()
    with pytest.raises(IsADirectoryError):
        upload.commit()
    assert names_in(final.parent) == ["backup.tar"]
    assert final.is_dir()


def test_a_missing_folder_is_refused_before_anything_is_created(storage: StorageRoot) -> None:
    with pytest.raises(FileNotFoundError):
        StagedUpload(storage, storage.path / "missing" / "backup.tar", who="test")
    assert storage.discard_all_staging() == 0
