"""The user documentation says what people see today and where they look for it."""

from __future__ import annotations

import re

from tests.backup_target import REPO_ROOT

# The old word, outside `code` and "quoted messages" (which the programs print as they are).
OLD_WORD = re.compile(r"\badd-ons?\b", re.IGNORECASE)
# The one sentence, in parentheses, that names the old word for users of older versions.
OLD_NAME_NOTE = re.compile(r'\(Home\s+Assistant\s+called\s+apps\s+"add-ons"\s+until\s+2026:[^)]*\)')


def prose(text: str) -> str:
    """Drop code, quoted messages and the note on the old name: what remains must say app."""
    text = OLD_NAME_NOTE.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.sub(r'"[^"\n]*"', "", text)


def user_part_of_readme() -> str:
    """The README up to its developer sections."""
    text = (REPO_ROOT / "README.md").read_text()
    return text[: text.index("## The two commands")]


def section(text: str, heading: str) -> str:
    """Return the Markdown section under `heading`, up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n")
    end = text.find(f"\n{level} ", start + len(heading) + 2)
    return text[start : end if end != -1 else None]


def test_docs_say_app_and_name_the_old_word_once() -> None:
    # Home Assistant's UI says "Apps" since mid-2026 (Settings > Apps); older versions said
    # "Add-ons", which each document mentions once for their users.
    docs, readme = (REPO_ROOT / "DOCS.md").read_text(), user_part_of_readme()
    for name, text in (("DOCS.md", docs), ("README.md", readme)):
        assert OLD_WORD.findall(prose(text)) == [], f"{name} still says add-on"
        assert len(OLD_NAME_NOTE.findall(text)) == 1, f"{name} names the old word once"
    assert "Settings > Apps > App Store" in docs
    assert "Settings → Apps → App Store" in readme


def test_the_configuration_tab_says_app() -> None:
    text = (REPO_ROOT / "translations" / "en.yaml").read_text()
    assert not OLD_WORD.search(text)


def test_linux_section_explains_davfs2_and_gvfs() -> None:
    linux = section((REPO_ROOT / "DOCS.md").read_text(), "### Linux")
    assert "buf_size 64" in linux
    assert "davfs2.conf" in linux
    assert '"Invalid reply received"' in linux
    assert "read-only" in linux
