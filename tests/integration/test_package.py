"""The integration's package files: manifest, translations, quality scale."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

import custom_components.backup_drive as package
from custom_components.backup_drive.errors import ERROR_MEANINGS

PACKAGE_DIR = Path(package.__file__).parent
CORE_ASYNCSSH_PIN = "2.21.0"  # homeassistant/components/sftp_storage/manifest.json


def load_json(name: str) -> dict[str, Any]:
    """Read a JSON file of the package."""
    data: dict[str, Any] = json.loads((PACKAGE_DIR / name).read_text())
    return data


def test_manifest() -> None:
    """The manifest declares what the issue asks and coexists with core's asyncssh pin."""
    manifest = load_json("manifest.json")
    assert manifest["domain"] == "backup_drive"
    assert manifest["config_flow"] is True
    assert manifest["integration_type"] == "service"
    assert manifest["iot_class"] == "local_polling"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    [requirement] = [Requirement(r) for r in manifest["requirements"]]
    assert requirement.name == "asyncssh"
    assert requirement.specifier.contains(CORE_ASYNCSSH_PIN)


def test_translations_match_strings() -> None:
    """translations/en.json (what Home Assistant loads) is strings.json."""
    assert load_json("translations/en.json") == load_json("strings.json")


def test_every_flow_error_and_abort_is_translated() -> None:
    """Each error key and abort reason the flows can return has a text."""
    strings = load_json("strings.json")
    source = (PACKAGE_DIR / "config_flow.py").read_text()
    errors = set(re.findall(r'(?:errors\[[^]]+\] = |return |, )"([a-z_]+)"\)?$', source, re.M))
    errors |= {meaning.flow_error for meaning in ERROR_MEANINGS.values() if meaning.flow_error}
    assert {"cannot_connect", "invalid_auth", "host_key_changed", "unknown"} <= errors
    assert errors <= set(strings["config"]["error"]), errors - set(strings["config"]["error"])
    reasons = set(re.findall(r'reason="([a-z_]+)"', source)) | {"already_configured"}
    assert reasons <= set(strings["config"]["abort"])
    for step in re.findall(r'step_id="([a-z_]+)"', source):
        assert step in strings["config"]["step"], step


def test_every_exception_and_issue_is_translated() -> None:
    """Setup's and the agent's exceptions and the repair issue have texts."""
    strings = load_json("strings.json")
    keys = {meaning.translation_key for meaning in ERROR_MEANINGS.values()}
    keys |= {m.agent_translation_key for m in ERROR_MEANINGS.values() if m.agent_translation_key}
    assert keys == set(strings["exceptions"])
    assert "host_key_mismatch" in strings["issues"]
    repairs = (PACKAGE_DIR / "repairs.py").read_text()
    aborts = set(re.findall(r'reason="([a-z_]+)"', repairs))
    assert aborts <= set(strings["issues"]["host_key_mismatch"]["fix_flow"]["abort"])


def test_quality_scale_lists_every_rule_honestly() -> None:
    """Every rule is done, todo or exempt, and every exemption or todo says why."""
    rules = yaml.safe_load((PACKAGE_DIR / "quality_scale.yaml").read_text())["rules"]
    assert len(rules) >= 50
    for name, rule in rules.items():
        status = rule if isinstance(rule, str) else rule["status"]
        assert status in ("done", "todo", "exempt"), name
        if status != "done":
            assert isinstance(rule, dict), name
            assert rule.get("comment"), name
