"""The integration's discovery flow reads exactly the payload keys BRIEF.md section 5 documents."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_HASSIO
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from custom_components.backup_drive.const import DISCOVERY_KEYS, DOMAIN
from tests.discovery_payload_contract import DOCUMENTED_PAYLOAD
from tests.integration.entries import ADDON_SLUG, DISCOVERY_UUID


async def start_discovery(hass: HomeAssistant, config: dict[str, Any]) -> Any:
    """Hand a payload to the discovery flow as Supervisor would."""
    info = HassioServiceInfo(
        config=config, name="Backup Drive", slug=ADDON_SLUG, uuid=DISCOVERY_UUID
    )
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )


def test_the_integration_names_the_documented_keys() -> None:
    """const.DISCOVERY_KEYS is the documented payload's key set."""
    assert set(DISCOVERY_KEYS) == set(DOCUMENTED_PAYLOAD)


@pytest.mark.parametrize(
    "config",
    [DOCUMENTED_PAYLOAD, {**DOCUMENTED_PAYLOAD, "webdav_port": 8080}],
    ids=["documented", "with_a_key_added_later"],
)
async def test_the_documented_payload_is_accepted(
    hass: HomeAssistant, config: dict[str, Any]
) -> None:
    """The documented payload, also with a key a later add-on adds, reaches the confirm step."""
    result = await start_discovery(hass, config)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"


@pytest.mark.parametrize("missing", sorted(DOCUMENTED_PAYLOAD))
async def test_every_documented_key_is_needed(hass: HomeAssistant, missing: str) -> None:
    """Without any one documented key the flow aborts."""
    config = {key: value for key, value in DOCUMENTED_PAYLOAD.items() if key != missing}
    result = await start_discovery(hass, config)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"
