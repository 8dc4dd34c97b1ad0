"""The page's readers: sidecars, the health file and the drive, fed good and bad content."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_drive_server.health_file import HEALTH_FILE_NAME, parse_health, read_health
from backup_drive_server.storage_root import StorageRoot
from backup_drive_server.web_page import drive_status
from backup_drive_server.web_page.backup_catalog import list_folder
from backup_drive_server.web_page.drive_status import read_drive_status
from backup_drive_server.web_page.render import human_size
from tests.web_page.drive_content import HEALTH_FILE, write_backups, write_health

GOOD_HEALTH = {
    "version": 1,
    "last_upload": "2026-11-30T01:02:03+00:00",
    "last_verified": "2026-11-30T02:00:00Z",
    "problems": ["stale_backups", 7],
    "backups": {
        "aaaa": {"verified_at": "2026-11-30T02:00:00Z", "result": "ok", "sha256": "ab"},
        "bbbb": {"result": "mismatch"},
        "cccc": {"result": "lost in space"},
        "dddd": "ok",
    },
}


def test_health_file_name_is_the_contract() -> None:
    assert HEALTH_FILE_NAME == HEALTH_FILE == ".backup-drive-health.json"


def test_health_file_fields() -> None:
    health = parse_health(json.dumps(GOOD_HEALTH).encode())
    assert health is not None
    assert health.last_upload == datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)
    assert health.last_verified == datetime(2026, 11, 30, 2, tzinfo=UTC)
    assert health.problems == ("stale_backups",)
    assert set(health.backups) == {"aaaa", "bbbb"}
    assert health.backups["aaaa"].result == "ok"
    assert health.backups["bbbb"].verified_at is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff garbage",
        b"[1, 2]",
        b'{"version": 2, "problems": ["x"]}',
        b'{"problems": ["x"]}',
        b'"version"',
    ],
)
def test_health_file_garbage_reads_as_nothing(raw: bytes) -> None:
    assert parse_health(raw) is None


def test_health_file_bad_fields_are_dropped_one_by_one() -> None:
    raw = {"version": 1, "last_upload": "yesterday", "last_verified": 5, "problems": "all",
           "backups": []}  # fmt: skip
    health = parse_health(json.dumps(raw).encode())
    assert health is not None
    assert (health.last_upload, health.last_verified, health.problems, health.backups) == (
        None, None, (), {},
    )  # fmt: skip


def test_health_file_absent_or_a_folder(tmp_path: Path) -> None:
    assert read_health(tmp_path) is None
    (tmp_path / HEALTH_FILE).mkdir()
    assert read_health(tmp_path) is None


def test_listing_reads_sidecars_newest_first(tmp_path: Path) -> None:
    written = write_backups(tmp_path, 4, sizes=[10, 2_500_000, 3_000_000_000, 999])
    write_health(tmp_path, {"version": 1, "backups": {written[0].backup_id: {"result": "ok"}}})
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "older").mkdir()
    (tmp_path / ".x.tar.partial-0123abcd").write_text("unfinished")
    (tmp_path / ".DS_Store").write_text("finder")
    listing = list_folder(tmp_path, read_health(tmp_path))
    assert [b.name for b in listing.backups] == [b.name for b in reversed(written)]
    assert [b.size for b in listing.backups] == [999, 3_000_000_000, 2_500_000, 10]
    assert [o.name for o in listing.others] == ["older", "notes.txt"]
    oldest = listing.backups[-1]
    assert oldest.verification is not None and oldest.verification.result == "ok"
    assert oldest.protected is True
    assert oldest.archive_present
    assert "Home Assistant (without history)" in oldest.contents
    assert "Add-ons: Mosquitto broker" in oldest.contents


def test_listing_survives_bad_sidecars(tmp_path: Path) -> None:
    [kept] = write_backups(tmp_path, 1)
    (tmp_path / ".broken.metadata.json").write_text("{not json")
    (tmp_path / ".empty.metadata.json").write_text("")
    (tmp_path / ".list.metadata.json").write_text("[]")
    (tmp_path / ".noid.metadata.json").write_text(
        json.dumps({"file_path": "a.tar", "metadata": {}})
    )
    core_style = {
        "file_path": "/backups/core.tar",
        "metadata": {"backup_id": "core1", "name": "Core"},
    }
    (tmp_path / ".core1.metadata.json").write_text(json.dumps(core_style))
    listing = list_folder(tmp_path)
    assert {b.name for b in listing.backups} == {kept.name, "Core"}
    core = next(b for b in listing.backups if b.name == "Core")
    assert core.archive_present is False
    assert core.date is None and core.size is None


def test_archive_size_comes_from_the_file_when_the_sidecar_has_none(tmp_path: Path) -> None:
    (tmp_path / "a.tar").write_bytes(b"x" * 1234)
    sidecar = {"file_path": "/backups/a.tar", "metadata": {"backup_id": "a1", "size": "big"}}
    (tmp_path / ".a1.metadata.json").write_text(json.dumps(sidecar))
    [backup] = list_folder(tmp_path).backups
    assert backup.size == 1234
    assert backup.name == "a.tar"


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (999, "999 bytes"), (1500, "1.5 kB"), (2_500_000, "2.5 MB"),
     (3_000_000_000, "3.0 GB"), (4_200_000_000_000, "4.2 TB"), (None, "unknown")],
)  # fmt: skip
def test_human_sizes(size: int | None, text: str) -> None:
    assert human_size(size) == text


def test_a_folder_and_a_missing_drive(tmp_path: Path) -> None:
    folder = read_drive_status(StorageRoot(tmp_path))
    assert folder.kind == "folder"
    assert folder.total is not None and folder.free is not None
    missing = read_drive_status(StorageRoot(tmp_path, require_mount=True))
    assert missing.kind == "missing"
    assert missing.total is None


def test_a_mounted_drive_is_named_by_udev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = tmp_path / "mnt"
    storage.mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / / rw - overlay overlay rw\n"
        f"97 22 8:17 / {storage} rw,nosuid,nodev,noexec - exfat /dev/sdb1 rw,iocharset=utf8\n"
    )
    udev = tmp_path / "udev"
    udev.mkdir()
    (udev / "b8:17").write_text(
        "S:disk/by-label/BACKUPS\nE:ID_FS_TYPE=exfat\nE:ID_FS_LABEL=BACKUPS\n"
    )
    monkeypatch.setattr(drive_status, "MOUNTINFO", mountinfo)
    monkeypatch.setattr(drive_status, "UDEV_DATA", udev)
    status = drive_status.read_drive_status(StorageRoot(storage, require_mount=True))
    assert (status.kind, status.source, status.label, status.filesystem, status.mounted) == (
        "drive", "/dev/sdb1", "BACKUPS", "exFAT", True,
    )  # fmt: skip
    assert status.used_percent is not None


def test_a_bind_mounted_folder_is_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = tmp_path / "mnt"
    storage.mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        f"97 22 8:3 /supervisor/share/backup\\040drive {storage} rw - ext4 /dev/sda8 rw\n"
    )
    monkeypatch.setattr(drive_status, "MOUNTINFO", mountinfo)
    monkeypatch.setattr(drive_status, "UDEV_DATA", tmp_path / "no-udev")
    status = drive_status.read_drive_status(StorageRoot(storage, require_mount=True))
    assert (status.kind, status.source, status.filesystem) == (
        "folder", "/supervisor/share/backup drive", "ext4",
    )  # fmt: skip
