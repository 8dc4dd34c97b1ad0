"""WebDAV logins: Digest requests cannot be replayed or forged, and bad headers get a 4xx."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import time
from collections.abc import Callable

from tests.backup_target import BackupTarget
from tests.peers import require_tool
from tests.server.conftest import Accounts, dav

REALM = "Backup Drive"
NONCE_SECONDS = 2


def md5(text: str) -> str:
    """Return the hex MD5 of a text, as Digest computes it."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def challenge_nonce(target: BackupTarget, path: str) -> str:
    """Ask for the resource without credentials; return the nonce of the Digest challenge."""
    response = dav(target, "PUT", path)
    assert response.status == 401
    offer = response.headers.get("WWW-Authenticate") or ""
    found = re.search(r'nonce="([^"]+)"', offer)
    assert found, offer
    return found.group(1)


def digest_header(
    username: str, password: str, method: str, uri: str, nonce: str, *, count: int = 1
) -> dict[str, str]:
    """Build a Digest Authorization header (qop=auth), as a client that knows the password."""
    cnonce = "0a4f113b"
    nc = f"{count:08x}"
    ha1 = md5(f"{username}:{REALM}:{password}")
    ha2 = md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return {
        "Authorization": (
            f'Digest username="{username}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
            f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}"'
        )
    }


def is_stale(response_headers: object) -> bool:
    """Return whether a 401 tells the client to retry with a new nonce."""
    return "stale=true" in str(response_headers).lower()


def test_curl_digest_uploads_and_downloads(target: BackupTarget, accounts: Accounts) -> None:
    curl = require_tool("curl", "curl")
    alice = accounts.alice
    url = f"http://127.0.0.1:{target.webdav_port}/backups/curl.txt"
    login = ["--digest", "-u", f"{alice.username}:{alice.password}"]
    for arguments in (["-T", "-"], []):
        result = subprocess.run(
            [curl, "-sS", "--fail", *login, *arguments, url],
            input="from curl", capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert (target.storage / "backups" / "curl.txt").read_text() == "from curl"


def test_a_captured_request_cannot_be_replayed(target: BackupTarget, accounts: Accounts) -> None:
    alice = accounts.alice
    path = "/backups/replayed.txt"
    nonce = challenge_nonce(target, path)
    signed = digest_header(alice.username, alice.password, "PUT", path, nonce)
    assert dav(target, "PUT", path, headers=signed, body=b"original").status in {201, 204}
    replay = dav(target, "PUT", path, headers=signed, body=b"replaced by an attacker")
    assert replay.status == 401
    assert is_stale(replay.headers), replay.headers
    assert "Digest nonce reused" in target.log
    assert (target.storage / "backups" / "replayed.txt").read_bytes() == b"original"
    # The client that owns the nonce goes on counting, as Windows and macOS do.
    next_use = digest_header(alice.username, alice.password, "PUT", path, nonce, count=2)
    assert dav(target, "PUT", path, headers=next_use, body=b"second").status in {201, 204}


def test_a_made_up_nonce_is_refused(target: BackupTarget, accounts: Accounts) -> None:
    path = "/backups/forged.txt"
    for nonce in ("1234567890.00.00", "made-up", "1.é.ü", challenge_nonce(target, path) + "0"):
        signed = digest_header("alice", "a guessed password", "PUT", path, nonce)
        response = dav(target, "PUT", path, headers=signed, body=b"forged")
        assert response.status == 401, nonce
        assert not is_stale(response.headers)
    assert not (target.storage / "backups" / "forged.txt").exists()
    # A nonce this process never issued, signed with the right password (a client holding a
    # nonce from before a restart): stale, so the client logs in again by itself.
    old = digest_header(accounts.alice.username, accounts.alice.password, "PUT", path, "1.2.3")
    response = dav(target, "PUT", path, headers=old, body=b"from before a restart")
    assert response.status == 401
    assert is_stale(response.headers)


def test_an_expired_nonce_is_stale(
    start_target: Callable[..., BackupTarget], accounts: Accounts
) -> None:
    target = start_target(extra_args=["--webdav-nonce-seconds", str(NONCE_SECONDS)])
    alice = accounts.alice
    path = "/backups/late.txt"
    nonce = challenge_nonce(target, path)
    time.sleep(NONCE_SECONDS + 1.5)  # waits for the expiry; no outcome depends on speed
    signed = digest_header(alice.username, alice.password, "PUT", path, nonce)
    response = dav(target, "PUT", path, headers=signed, body=b"late")
    assert response.status == 401
    assert is_stale(response.headers), response.headers
    assert not (target.storage / "backups" / "late.txt").exists()
    # Stale answers are not failed logins: the address is not slowed down or banned.
    assert "failed" not in target.log.lower()


def test_malformed_basic_credentials_get_a_400(target: BackupTarget) -> None:
    for token in ("not base64!", base64.b64encode(b"no-colon").decode(), "//79"):
        response = dav(target, "GET", "/", headers={"Authorization": f"Basic {token}"})
        assert response.status == 400, (token, response.status)
        assert "Basic credentials" in response.text
    assert "Traceback" not in target.log
