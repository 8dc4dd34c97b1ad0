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
    """Setup's exceptions and the repair issue have texts, with the placeholders they use."""
    strings = load_json("strings.json")
    keys = {meaning.translation_key for meaning in ERROR_MEANINGS.values()}
    coordinator = (PACKAGE_DIR / "coordinator.py").read_text()
    keys |= set(re.findall(r'translation_key="([a-z_]+)"', coordinator))
    assert keys == set(strings["exceptions"])
    assert "host_key_mismatch" in strings["issues"]
    repairs = (PACKAGE_DIR / "repairs.py").read_text()
    aborts = set(re.findall(r'reason="([a-z_]+)"', repairs))
    assert aborts <= set(strings["issues"]["host_key_mismatch"]["fix_flow"]["abort"])


def test_health_entities_issues_and_options_are_translated() -> None:
    """Every entity key, health repair (with its placeholders) and option has a text."""
    strings = load_json("strings.json")
    entities = {platform: set(keys) for platform, keys in strings["entity"].items()}
    assert entities == {
        "sensor": {
            "free_space",
            "total_space",
            "backups_stored",
            "backups_size",
            "last_upload",
            "last_verified",
        },
        "binary_sensor": {"connected", "backup_problem"},
        "button": {"verify_backups"},
    }
    source = (PACKAGE_DIR / "health_repairs.py").read_text()
    for problem in ("not_enough_space", "stale_backups", "drive_unreachable", "backup_corrupted"):
        texts = json.dumps(strings["issues"][problem])
        for placeholder in re.findall(r"{([a-z_]+)}", texts):
            assert f'"{placeholder}"' in source, (problem, placeholder)
    menu = strings["issues"]["backup_corrupted"]["fix_flow"]["step"]["init"]["menu_options"]
    assert set(menu) == {"delete", "keep"}
    assert set(strings["options"]["step"]["init"]["data"]) == {"stale_days", "verify_days"}


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
