"""How a missing peer is reported (tests/peers.py): a failure, a skip only when opted out."""

from __future__ import annotations

import pytest

from tests.peers import OPT_OUT_VARIABLE, require_tool

ABSENT = "backup-drive-no-such-program"


def outcome_of_a_missing_peer() -> tuple[str, str]:
    """Ask for a program that does not exist; return ("fail" or "skip", the message)."""
    # Catch both, so that a wrong skip fails this test instead of skipping it.
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as raised:
        require_tool(ABSENT, "none")
    kind = "fail" if raised.type is pytest.fail.Exception else "skip"
    return kind, str(raised.value)


@pytest.mark.parametrize("ci", ["true", "1", "yes", "True"])
def test_ci_fails_on_a_missing_peer_even_when_opted_out(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv(OPT_OUT_VARIABLE, "1")
    monkeypatch.setenv("CI", ci)
    kind, message = outcome_of_a_missing_peer()
    assert kind == "fail", message
    assert f"{ABSENT} is not installed (Debian package none)" in message


@pytest.mark.parametrize("ci", [None, ""])
def test_opting_out_outside_ci_skips_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    monkeypatch.setenv(OPT_OUT_VARIABLE, "1")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    kind, message = outcome_of_a_missing_peer()
    assert kind == "skip", message
    assert f"skipped because {OPT_OUT_VARIABLE}=1" in message


def test_without_opting_out_a_missing_peer_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPT_OUT_VARIABLE, raising=False)
    monkeypatch.delenv("CI", raising=False)
    kind, message = outcome_of_a_missing_peer()
    assert kind == "fail", message
