"""Against OpenSSH's sshd, the generic SFTP server: keys that are not ours, hostile names."""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from homeassistant.components.backup import BackupAgentError
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.util.loop import protect_loop
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.backup_drive.backup import BackupDriveAgent
from custom_components.backup_drive.const import CONF_HOST_KEY, CONF_PATH, CONF_PRIVATE_KEY, DOMAIN
from custom_components.backup_drive.health_record import HEALTH_FILE_NAME
from custom_components.backup_drive.listing_index import INDEX_NAME
from tests.integration.entries import set_up_entry, stop_target
from tests.integration.test_backup import make_backup, upload
from tests.openssh_server import OpenSshServer
from tests.peers import require_root, require_tool
from tests.ssh_keys import generate_key_pair


@pytest.fixture
def detect_blocking_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Report open() in the event loop the way Home Assistant does outside its tests."""
    # Home Assistant installs this check at startup but leaves it out under test runners.
    protected = protect_loop(
        builtins.open, loop_thread_id=threading.get_ident(), strict=False, strict_core=False
    )
    monkeypatch.setattr(builtins, "open", protected)


@pytest.fixture
def home_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A key pair in ~/.ssh of a temporary HOME, where asyncssh looks by default."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    ssh_keygen = require_tool("ssh-keygen", "openssh-client")
    return generate_key_pair(home / ".ssh" / "id_ed25519", ssh_keygen=ssh_keygen)


@pytest.fixture
def entry_key() -> asyncssh.SSHKey:
    """The private key a key-based entry logs in with."""
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
async def openssh_server(
    hass: HomeAssistant,
    tmp_path: Path,
    socket_enabled: None,
    home_key: str,
    entry_key: asyncssh.SSHKey,
) -> AsyncIterator[OpenSshServer]:
    """sshd that lets root in with the entry's key or the one in ~/.ssh; logs every key offered."""
    require_root("sshd logs clients in as the user running it")
    server = OpenSshServer(
        work=tmp_path / "sshd",
        sshd=require_tool("sshd", "openssh-server"),
        ssh_keygen=require_tool("ssh-keygen", "openssh-client"),
        authorized_keys=[home_key, entry_key.export_public_key("openssh").decode().strip()],
        password_authentication=True,
        log_level="VERBOSE",
    )
    await hass.async_add_executor_job(server.start)
    yield server
    await stop_target(hass, server)


def blocking_calls(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return Home Assistant's reports of blocking calls made by this integration."""
    return [
        record.getMessage()
        for record in caplog.records
        if "Detected blocking call" in record.getMessage() and DOMAIN in record.getMessage()
    ]


async def test_password_entry_offers_no_key_from_home(
    openssh_server: OpenSshServer,
    hass: HomeAssistant,
    detect_blocking_open: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A password-only entry never reads ~/.ssh nor offers its key, in the flow or at setup."""
    form = {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: openssh_server.port,
        CONF_USERNAME: "root",
        CONF_PASSWORD: "not-root's-password",
        CONF_PATH: "/",
    }
    caplog.set_level(logging.DEBUG)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    assert result["step_id"] == "host_key"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    # The key in ~/.ssh would have let the flow in; only the password may be tried.
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    await set_up_entry(
        hass,
        {**form, CONF_HOST_KEY: openssh_server.host_key},
        expect=ConfigEntryState.SETUP_ERROR,
    )

    log = openssh_server.log
    assert "Failed password for root" in log, log
    assert "publickey" not in log, log
    assert blocking_calls(caplog) == []


def files_under(root: Path) -> set[Path]:
    """Return every file below `root`, at any depth."""
    return {path for path in root.rglob("*") if not path.is_dir()}


@pytest.fixture
async def key_entry(
    openssh_server: OpenSshServer, hass: HomeAssistant, tmp_path: Path, entry_key: asyncssh.SSHKey
) -> MockConfigEntry:
    """A loaded entry that logs in to sshd as root with a key, on the folder nas/backups."""
    folder = tmp_path / "nas" / "backups"
    folder.mkdir(parents=True)
    return await set_up_entry(
        hass,
        {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: openssh_server.port,
            CONF_USERNAME: "root",
            CONF_PRIVATE_KEY: entry_key.export_private_key("openssh").decode(),
            CONF_HOST_KEY: openssh_server.host_key,
            CONF_PATH: str(folder),
        },
        expect=ConfigEntryState.LOADED,
    )


async def test_backup_names_never_leave_the_folder(
    key_entry: MockConfigEntry, hass: HomeAssistant, tmp_path: Path
) -> None:
    """Names with separators, "..", NUL or 300 bytes become flat files inside the folder."""
    folder = Path(key_entry.data[CONF_PATH])
    # Folders a name would reach if it were used as a path: the bug would write there.
    (folder / "nested").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    names = {
        "00000001": "nested/inside",
        "00000002": "back\\slash",
        "00000003": "../../escaped",
        "00000004": str(outside / "absolute"),
        "00000005": "nul\x00byte",
        "00000006": "é" * 150,
    }
    agent = BackupDriveAgent(hass, key_entry)
    contents = {backup_id: f"archive of {backup_id}".encode() for backup_id in names}
    for backup_id, name in names.items():
        await upload(agent, make_backup(backup_id, 19, name=name), contents[backup_id])

    assert files_under(outside) == set()
    assert files_under(tmp_path / "nas") == {p for p in folder.iterdir() if p.is_file()}
    archives = [p for p in folder.iterdir() if p.suffix == ".tar"]
    assert len(archives) == len(names)
    for archive in archives:
        assert not archive.name.startswith(".")
        assert len(archive.name.encode()) <= 255
    key_entry.runtime_data.client.invalidate_cache()
    listed = {backup.backup_id: backup.name for backup in await agent.async_list_backups()}
    assert listed == names
    for backup_id, content in contents.items():
        stream = await agent.async_download_backup(backup_id)
        assert b"".join([chunk async for chunk in stream]) == content


@pytest.mark.parametrize("backup_id", ["../../escaped", "/etc/x", "a\\b", "nul\x00", "9" * 230])
async def test_backup_id_that_cannot_name_a_file_is_refused(
    key_entry: MockConfigEntry, hass: HomeAssistant, tmp_path: Path, backup_id: str
) -> None:
    """An id that would put the metadata file elsewhere is refused, saying why; nothing written."""
    agent = BackupDriveAgent(hass, key_entry)
    with pytest.raises(BackupAgentError, match=r"cannot name a file|too long"):
        await upload(agent, make_backup(backup_id, 3), b"abc")
    # Only what the entry keeps about the folder (its listing index, its health file) is there.
    assert {path.name for path in files_under(tmp_path / "nas")} <= {INDEX_NAME, HEALTH_FILE_NAME}
