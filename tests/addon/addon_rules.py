"""The rules Supervisor and the add-on linter apply to config.yaml, written out for the tests.

Taken from the linter's documented schema (frenck/action-addon-linter: JSON Schema, unknown keys
refused, no key set to its default, no `watchdog`) and from Supervisor's option types
(supervisor/addons/options.py). Kept here rather than read from the linter, so that a fresh
clone checks itself with nothing from outside the repository.
"""

from __future__ import annotations

import re
from typing import Any

REQUIRED_KEYS = ("name", "version", "slug", "description", "arch")
# armhf, armv7 and i386 are deprecated: Supervisor still accepts them, new add-ons drop them.
ARCHITECTURES = frozenset({"aarch64", "amd64"})

# Switches the linter knows that are off unless written, so writing `false` is refused.
OFF_BY_DEFAULT = frozenset({
    "advanced", "audio", "auth_api", "auto_uart", "devicetree", "docker_api", "full_access",
    "gpio", "hassio_api", "homeassistant_api", "host_dbus", "host_ipc", "host_network",
    "host_pid", "host_uts", "ingress", "ingress_stream", "journald", "kernel_modules", "legacy",
    "realtime", "stdin", "uart", "udev", "usb", "video",
})  # fmt: skip
# Keys with any other default, which config.yaml must not repeat either.
DEFAULTS: dict[str, Any] = {
    "apparmor": True, "backup": "hot", "boot": "auto", "hassio_role": "default",
    "ingress_port": 8099, "init": True, "options": {}, "panel_admin": True,
    "panel_icon": "mdi:puzzle", "schema": {}, "stage": "stable", "startup": "application",
    "timeout": 10, "tmpfs": False, "ulimits": {},
}  # fmt: skip
# Keys that may hold a profile name or a size instead of their boolean default.
STRING_OR_BOOL = frozenset({"apparmor", "tmpfs"})
# Keys without a default, by the type of their value.
STRINGS = frozenset({
    "backup_pre", "backup_post", "codenotary", "description", "homeassistant", "image",
    "ingress_entry", "name", "panel_title", "slug", "url", "version", "watchdog", "webui",
})  # fmt: skip
LISTS = frozenset({
    "arch", "backup_exclude", "breaking_versions", "devices", "discovery", "machine", "map",
    "privileged", "services",
})  # fmt: skip
MAPPINGS = frozenset({"environment", "ports", "ports_description"})

ENUMS = {
    "backup": {"hot", "cold"},
    "boot": {"auto", "manual", "manual_only"},
    "hassio_role": {"admin", "backup", "default", "homeassistant", "manager"},
    "stage": {"deprecated", "experimental", "stable"},
    "startup": {"application", "initialize", "once", "services", "system"},
}
CAPABILITIES = frozenset({
    "BPF", "DAC_READ_SEARCH", "IPC_LOCK", "NET_ADMIN", "NET_RAW", "PERFMON", "SYS_ADMIN",
    "SYS_MODULE", "SYS_NICE", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME",
})  # fmt: skip
# The linter still knows only the pre-2026 folder names (Supervisor accepts both).
MAP_TYPES = frozenset({
    "addon_config", "addons", "all_addon_configs", "backup", "config", "data",
    "homeassistant_config", "media", "share", "ssl",
})  # fmt: skip
MAP_KEYS = frozenset({"type", "read_only", "path"})
PORT_NAME = re.compile(r"\d{1,5}/(tcp|udp)")

# Supervisor's supervisor/addons/options.py, RE_SCHEMA_ELEMENT.
RE_SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool"
    r"|email"
    r"|url"
    r"|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>-?\d+)?,(?P<i_max>-?\d+)?\))?"
    r"|float(?:\((?P<f_min>-?\d*\.?\d+)?,(?P<f_max>-?\d*\.?\d+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)


def has_type(key: str, value: Any) -> bool:
    """Tell whether `value` has the type the linter expects for `key`."""
    if key in OFF_BY_DEFAULT:
        return isinstance(value, bool)
    if key in STRING_OR_BOOL:
        return isinstance(value, str | bool)
    if key in DEFAULTS:
        expected = type(DEFAULTS[key])
        # YAML's true is an int to Python; a number key must not take it.
        return isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if key in STRINGS:
        return isinstance(value, str)
    if key in LISTS:
        return isinstance(value, list)
    return isinstance(value, dict)


def is_known(key: str) -> bool:
    """Tell whether the linter knows `key` (it refuses every other)."""
    return any(key in group for group in (OFF_BY_DEFAULT, DEFAULTS, STRINGS, LISTS, MAPPINGS))


def map_problems(entries: list[Any]) -> list[str]:
    """Return what the linter refuses in the `map` list."""
    problems = []
    for entry in entries:
        if isinstance(entry, str):
            name, _, mode = entry.partition(":")
            if name not in MAP_TYPES or mode not in {"", "rw", "ro"}:
                problems.append(f"map: {entry!r} is not a folder the linter knows")
        elif not isinstance(entry, dict) or entry.get("type") not in MAP_TYPES:
            problems.append(f"map: {entry!r} has no type the linter knows ({sorted(MAP_TYPES)})")
        elif set(entry) - MAP_KEYS or not isinstance(entry.get("read_only", False), bool):
            problems.append(f"map: {entry!r} may hold only type, read_only (a bool) and path")
    return problems


def port_problems(config: dict[str, Any]) -> list[str]:
    """Return what Supervisor refuses in `ports` and `ports_description`."""
    problems = []
    for name, host_port in config.get("ports", {}).items():
        if not PORT_NAME.fullmatch(str(name)):
            problems.append(f"ports: {name!r} is not PORT/tcp or PORT/udp")
        valid = isinstance(host_port, int) and not isinstance(host_port, bool)
        if host_port is not None and not (valid and 1 <= host_port <= 65535):
            problems.append(f"ports: {name} maps to {host_port!r}, not a port or null")
    for name, text in config.get("ports_description", {}).items():
        if name not in config.get("ports", {}) or not isinstance(text, str):
            problems.append(f"ports_description: {name!r} describes no port, or not in words")
    return problems


def config_problems(config: dict[str, Any]) -> list[str]:
    """Return, in words, everything the linter or Supervisor would refuse in `config`."""
    problems = [f"{key} is required" for key in REQUIRED_KEYS if key not in config]
    for key, value in config.items():
        if not is_known(key):
            problems.append(f"{key} is not a key the linter knows")
        elif not has_type(key, value):
            problems.append(f"{key}: {value!r} has the wrong type")
        elif (key in OFF_BY_DEFAULT and value is False) or DEFAULTS.get(key, ...) == value:
            problems.append(f"{key}: {value!r} is the default; the linter refuses it written out")
        elif key in ENUMS and value not in ENUMS[key]:
            problems.append(f"{key}: {value!r} is not one of {sorted(ENUMS[key])}")
    if "watchdog" in config:
        problems.append("watchdog is refused: use the Dockerfile's HEALTHCHECK")
    if config.get("init") is not False:
        problems.append("init must be false: the image runs s6-overlay v3 as its own init")
    if isinstance(config.get("arch"), list) and not set(config["arch"]) <= ARCHITECTURES:
        problems.append(f"arch: only {sorted(ARCHITECTURES)}, not {config['arch']}")
    if not set(config.get("privileged", [])) <= CAPABILITIES:
        problems.append(f"privileged: {config['privileged']} names an unknown capability")
    problems += map_problems(config.get("map", []))
    problems += port_problems(config)
    return problems


def schema_leaves(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten the schema into (dotted name, element) pairs, lists marked with []."""
    leaves: list[tuple[str, Any]] = []
    for key, element in schema.items():
        name = f"{prefix}{key}"
        if isinstance(element, list):
            assert len(element) == 1, f"{name}: a list schema holds exactly one element"
            inner = element[0]
            if isinstance(inner, dict):
                leaves += schema_leaves(inner, f"{name}[].")
            else:
                leaves.append((f"{name}[]", inner))
        elif isinstance(element, dict):
            leaves += schema_leaves(element, f"{name}.")
        else:
            leaves.append((name, element))
    return leaves


def validate_value(element: str, value: Any) -> bool:
    """Check one option value against its schema element as Supervisor would."""
    match = RE_SCHEMA_ELEMENT.match(element)
    assert match
    kind = element.rstrip("?").split("(", 1)[0]
    if kind == "bool":
        return isinstance(value, bool)
    if kind in {"str", "password", "email", "url", "device"}:
        return isinstance(value, str)
    if kind == "match":
        return isinstance(value, str) and re.match(match.group("match"), value) is not None
    if kind == "list":
        return value in match.group("list").split("|")
    if kind in {"int", "port"}:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, float)


def check_options(options: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    """Return what Supervisor would refuse in `options` for `schema`."""
    problems = []
    for key, value in options.items():
        if key not in schema:
            problems.append(f"{where}{key} is not in the schema")
            continue
        element = schema[key]
        if isinstance(element, list):
            if not isinstance(value, list):
                problems.append(f"{where}{key} must be a list")
                continue
            for index, item in enumerate(value):
                if isinstance(element[0], dict):
                    problems += check_options(item, element[0], f"{where}{key}[{index}].")
                elif not validate_value(element[0], item):
                    problems.append(f"{where}{key}[{index}] does not match {element[0]}")
        elif not validate_value(element, value):
            problems.append(f"{where}{key}={value!r} does not match {element}")
    for key, element in schema.items():
        optional = element[0] if isinstance(element, list) else element
        if key not in options and not (isinstance(optional, str) and optional.endswith("?")):
            problems.append(f"{where}{key} is required but has no default in options")
    return problems
