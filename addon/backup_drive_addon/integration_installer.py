"""Copy the bundled Backup Drive integration into Home Assistant's custom_components folder."""

from __future__ import annotations

import enum
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backup_drive_addon.supervisor import SupervisorClient, SupervisorError

_LOGGER = logging.getLogger(__name__)

DOMAIN = "backup_drive"
NOTIFICATION_ID = "backup_drive_integration"
NOTIFICATION_PATH = "/core/api/services/persistent_notification/create"


class InstallError(Exception):
    """The integration could not be installed; the message says why."""


class Outcome(enum.Enum):
    """What the installer did."""

    INSTALLED = "installed"
    UPDATED = "updated"
    UP_TO_DATE = "up to date"
    NEWER_KEPT = "newer kept"
    FOREIGN_KEPT = "foreign kept"


@dataclass(frozen=True, kw_only=True)
class InstallResult:
    """What happened, and the versions involved."""

    outcome: Outcome
    bundled: str
    installed: str | None

    @property
    def needs_restart(self) -> bool:
        """Home Assistant loads new integration code only when it starts."""
        return self.outcome in {Outcome.INSTALLED, Outcome.UPDATED}


def read_version(folder: Path) -> str | None:
    """Return the `version` in the integration's manifest.json, None when unreadable."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    version = manifest.get("version") if isinstance(manifest, dict) else None
    return str(version) if version else None


def version_key(version: str) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    """Order versions like 0.1.0 < 0.2.0b1 < 0.2.0 < 0.10.0 (a pre-release sorts before)."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)(.*)$", version)
    if not match:
        return ((), 0, ())
    release = tuple(int(part) for part in match.group(1).split("."))
    while release and release[-1] == 0:
        release = release[:-1]
    rest = match.group(2)
    pre = tuple(int(part) for part in re.findall(r"\d+", rest))
    return (release, 0 if rest.strip() else 1, pre)


def install_integration(source: Path, config_dir: Path) -> InstallResult:
    """Install or update `source` as custom_components/backup_drive; never downgrade."""
    bundled = read_version(source)
    if bundled is None:
        raise InstallError(f"the bundled integration in {source} has no readable version")
    components = config_dir / "custom_components"
    target = components / DOMAIN
    installed = read_version(target) if target.exists() else None
    if target.exists() or target.is_symlink():
        if installed is None:
            # Someone put something else there (or a development checkout): not ours to replace.
            _LOGGER.warning(
                "%s exists but has no manifest version; leaving it alone. Delete it to let the "
                "add-on install Backup Drive %s",
                target,
                bundled,
            )
            return InstallResult(outcome=Outcome.FOREIGN_KEPT, bundled=bundled, installed=None)
        if version_key(installed) > version_key(bundled):
            _LOGGER.info(
                "The installed Backup Drive integration %s is newer than the bundled %s; "
                "keeping it",
                installed,
                bundled,
            )
            return InstallResult(outcome=Outcome.NEWER_KEPT, bundled=bundled, installed=installed)
        if version_key(installed) == version_key(bundled):
            _LOGGER.info("The Backup Drive integration %s is up to date", installed)
            return InstallResult(outcome=Outcome.UP_TO_DATE, bundled=bundled, installed=installed)
    try:
        _replace_tree(source, target)
    except OSError as err:
        raise InstallError(f"cannot write {target}: {err.strerror or err}") from err
    outcome = Outcome.INSTALLED if installed is None else Outcome.UPDATED
    if outcome is Outcome.INSTALLED:
        _LOGGER.info("Installed the Backup Drive integration %s into %s", bundled, target)
    else:
        _LOGGER.info("Updated the Backup Drive integration from %s to %s", installed, bundled)
    return InstallResult(outcome=outcome, bundled=bundled, installed=installed)


def _replace_tree(source: Path, target: Path) -> None:
    """Swap `target` for a copy of `source` with renames, so Home Assistant never sees half."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{DOMAIN}.new-", dir=target.parent))
    retired = target.parent / f".{DOMAIN}.old-{staging.name.rsplit('-', 1)[-1]}"
    try:
        copy = staging / DOMAIN
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if target.exists() or target.is_symlink():
            target.rename(retired)
        copy.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def notify_restart(client: SupervisorClient, result: InstallResult) -> None:
    """Tell the user, in Home Assistant, that a restart makes Backup Drive appear."""
    if result.outcome is Outcome.INSTALLED:
        what = f"The Backup Drive add-on installed the Backup Drive integration {result.bundled}."
    else:
        what = (
            f"The Backup Drive add-on updated the Backup Drive integration from "
            f"{result.installed} to {result.bundled}."
        )
    message = (
        f"{what}\n\nRestart Home Assistant to load it: Settings > System, the power button at "
        "the top right, Restart Home Assistant. "
        "Backup Drive then appears under Settings > Devices & services, ready to be "
        "confirmed, and becomes a backup location."
    )
    client.post(
        NOTIFICATION_PATH,
        {
            "notification_id": NOTIFICATION_ID,
            "title": "Restart to finish Backup Drive",
            "message": message,
        },
    )
    _LOGGER.info("Asked for a Home Assistant restart through a notification")


def install_and_notify(
    source: Path, config_dir: Path, client: SupervisorClient | None
) -> InstallResult:
    """Install, then notify; a failed notification is only a warning."""
    result = install_integration(source, config_dir)
    if result.needs_restart:
        if client is None:
            _LOGGER.warning("Restart Home Assistant to load the Backup Drive integration")
        else:
            try:
                notify_restart(client, result)
            except SupervisorError as err:
                _LOGGER.warning(
                    "Could not show the restart notification (%s). Restart Home Assistant to "
                    "load the Backup Drive integration",
                    err,
                )
    return result
