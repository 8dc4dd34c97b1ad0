"""Against OpenSSH's sshd, the generic SFTP server: keys that are not ours, hostile names."""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.util.loop import protect_loop

from custom_components.backup_drive.const import CONF_HOST_KEY, CONF_PATH, DOMAIN
from tests.integration.entries import set_up_entry, stop_target
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
async def openssh_server(
    hass: HomeAssistant, tmp_path: Path, socket_enabled: None, home_key: str
) -> AsyncIterator[OpenSshServer]:
    """sshd that would let root in with the key in ~/.ssh, and logs every key offered."""
    require_root("sshd logs clients in as the user running it")
    server = OpenSshServer(
        work=tmp_path / "sshd",
        sshd=require_tool("sshd", "openssh-server"),
        ssh_keygen=require_tool("ssh-keygen", "openssh-client"),
        authorized_keys=[home_key],
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
