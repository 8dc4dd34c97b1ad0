"""rclone copies a tree of several hundred files, one over 100 MiB, over SFTP and WebDAV."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.backup_target import BackupTarget
from tests.peers import require_tool
from tests.server.conftest import Account, Accounts, partial_files, write_known_hosts

BIG_FILE_SIZE = 100 * 1024 * 1024 + 12345
FOLDER_NAMES = ["plain", "with spaces", "Ünïcödé ファイル", "emoji 📦", "deep/er/still deeper"]


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the tree once per module: nested folders, odd names, sizes from 0 to 100 MiB."""
    root = tmp_path_factory.mktemp("rclone-source")
    count = 0
    for folder_index, folder_name in enumerate(FOLDER_NAMES):
        folder = root / folder_name
        folder.mkdir(parents=True)
        for index in range(60):
            name = f"file {index:03d} Grüße € #{folder_index}.bin" if index % 3 else f"f{index}.txt"
            size = (index * 7919 + folder_index * 131) % (256 * 1024) if index % 10 else 0
            (folder / name).write_bytes(os.urandom(size))
            count += 1
    (root / "big backup.tar").write_bytes(os.urandom(BIG_FILE_SIZE))
    assert count + 1 >= 300
    return root


def rclone(config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run rclone with our config file; no retries, so a server fault cannot hide behind one."""
    binary = require_tool("rclone", "rclone")
    return subprocess.run(
        [
            binary, "--config", str(config), "--retries", "1", "--low-level-retries", "1",
            "--transfers", "4", "--checkers", "4", *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip


def obscure(password: str) -> str:
    """Return password in rclone's obscured form, as rclone config files store it."""
    binary = require_tool("rclone", "rclone")
    return subprocess.run(
        [binary, "obscure", password], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def write_config(target: BackupTarget, account: Account, tmp_path: Path) -> Path:
    """Write an rclone config with an `sftp` and a `dav` remote for account.

    The name matters: rclone.conf, never config.yaml/yml/json (Supervisor would read those as an
    add-on definition).
    """
    config = tmp_path / "rclone.conf"
    config.write_text(
        "[sftp]\n"
        "type = sftp\n"
        "host = 127.0.0.1\n"
        f"port = {target.sftp_port}\n"
        f"user = {account.username}\n"
        f"key_file = {account.private_key}\n"
        f"known_hosts_file = {write_known_hosts(target, tmp_path)}\n"
        # Debian's rclone 1.60 sends trailing bytes after its last concurrent SFTP write, which
        # asyncssh rightly rejects (rclone bug, fixed in 1.62); sequential writes avoid it.
        "disable_concurrent_writes = true\n"
        "\n"
        "[dav]\n"
        "type = webdav\n"
        f"url = http://127.0.0.1:{target.webdav_port}/\n"
        "vendor = other\n"
        f"user = {account.username}\n"
        f"pass = {obscure(account.password)}\n"
    )
    return config


def assert_same_tree(source: Path, copy: Path) -> None:
    """Assert copy holds exactly source's files with the same bytes."""
    source_files = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    copy_files = sorted(p.relative_to(copy) for p in copy.rglob("*") if p.is_file())
    assert copy_files == source_files
    for relative in source_files:
        assert (copy / relative).read_bytes() == (source / relative).read_bytes(), relative


@pytest.mark.parametrize("remote", ["sftp:/rclone/tree", "dav:rclone/tree"], ids=["sftp", "webdav"])
def test_rclone_copy_and_check(
    target: BackupTarget, accounts: Accounts, tmp_path: Path, source_tree: Path, remote: str
) -> None:
    config = write_config(target, accounts.alice, tmp_path)

    copied = rclone(config, "copy", str(source_tree), remote)
    assert copied.returncode == 0, copied.stderr[-5000:]

    checked = rclone(config, "check", "--download", str(source_tree), remote)
    assert checked.returncode == 0, checked.stderr[-5000:]
    assert "0 differences found" in checked.stderr, checked.stderr[-5000:]

    assert_same_tree(source_tree, target.storage / "rclone" / "tree")
    assert partial_files(target.storage) == []


def test_rclone_about_webdav_reads_quota(
    target: BackupTarget, accounts: Accounts, tmp_path: Path
) -> None:
    config = write_config(target, accounts.alice, tmp_path)
    about = rclone(config, "about", "--json", "dav:")
    assert about.returncode == 0, about.stderr
    usage = json.loads(about.stdout)
    disk = os.statvfs(target.storage)
    assert usage["free"] > 0
    # Free space moves while other tests write; the order of magnitude must match the disk.
    assert usage["free"] <= disk.f_blocks * disk.f_frsize
    assert usage["used"] >= 0
