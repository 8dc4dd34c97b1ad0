"""The integration's package files: manifest, translations, quality scale."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from PIL import Image

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
    # Set up after backup, whose agents and hooks the integration provides.
    assert manifest["after_dependencies"] == ["backup"]
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


# The rules hassfest knows (script/hassfest/quality_scale.py in home-assistant/core, late 2026).
HASSFEST_RULES = frozenset(
    [
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
        "async-dependency",
        "inject-websession",
        "strict-typing",
    ]
)


def test_quality_scale_lists_every_rule_honestly() -> None:
    """Every rule hassfest knows is done, todo or exempt, and every exemption or todo says why."""
    rules = yaml.safe_load((PACKAGE_DIR / "quality_scale.yaml").read_text())["rules"]
    assert set(rules) == HASSFEST_RULES
    for name, rule in rules.items():
        status = rule if isinstance(rule, str) else rule["status"]
        assert status in ("done", "todo", "exempt"), name
        if status != "done":
            assert isinstance(rule, dict), name
            assert rule.get("comment"), name


# The pre-flight space check (coordinator.py) raises its error with the sizes filled in.
EXTRA_PLACEHOLDERS = {"not_enough_space": {"needed", "free"}}


def test_exception_texts_use_only_the_placeholders_given() -> None:
    """Each exception text names only what failures.failure_placeholders fills in."""
    for key, text in load_json("strings.json")["exceptions"].items():
        used = set(re.findall(r"{(\w+)}", text["message"]))
        assert used <= {"title", "host", "error", "offered"} | EXTRA_PLACEHOLDERS.get(key, set()), (
            key
        )


def test_agent_errors_carry_no_english_message() -> None:
    """No backup error is built from an English string: each comes from the translated table."""
    for module in PACKAGE_DIR.glob("*.py"):
        built = re.findall(
            r"(?:BackupAgentError|BackupNotFound|agent_error)\(\s*f?[\"']", module.read_text()
        )
        assert built == [], module.name


BRAND_IMAGES = ("icon", "logo", "dark_logo")


def open_brand_image(name: str) -> Image.Image:
    """Open one of brand/'s images, checking it is a PNG with an alpha channel."""
    image = Image.open(PACKAGE_DIR / "brand" / name)
    assert image.format == "PNG", name
    assert image.mode == "RGBA", name
    return image


@pytest.mark.parametrize("stem", BRAND_IMAGES)
def test_brand_images_follow_the_brands_rules(stem: str) -> None:
    """Home Assistant 2026.3+ shows brand/ images: sizes, PNG, transparent and trimmed."""
    single, double = open_brand_image(f"{stem}.png"), open_brand_image(f"{stem}@2x.png")
    for image, low, high in ((single, 128, 256), (double, 256, 512)):
        if stem == "icon":
            assert image.size == (high, high)
        else:
            assert low <= min(image.size) <= high, image.size
        assert image.getchannel("A").getpixel((0, 0)) == 0, "the background must be transparent"
        left, top, right, bottom = image.getbbox() or (0, 0, 0, 0)
        # Trimmed: the drawing reaches the edges (an icon stays square, so one axis has room).
        assert (left, right) == (0, image.width) or (top, bottom) == (0, image.height)
        if stem != "icon":
            assert (left, top, right, bottom) == (0, 0, *image.size)
    assert abs(double.width - 2 * single.width) <= 4
    assert abs(double.height - 2 * single.height) <= 4
    if stem.startswith("dark_"):
        assert single.size == open_brand_image(stem.removeprefix("dark_") + ".png").size
