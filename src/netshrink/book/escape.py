"""Strings from a manifest, a CSV or a provenance record (run output, possibly from elsewhere)
made safe for the book's MyST Markdown and its HTML: `text` keeps them on one line (no newline
can open a directive or a block), turns the characters that start MyST or HTML markup into
escapes or entities (so `<script>`, `{role}`, `[link](...)`, `$math$` and table pipes show as
written), and keeps balanced inline code spans, whose content MyST never interprets. `Markup`
marks the book's own markup, which `text` leaves alone; `figure_path` refuses a figure path
that is not a plain relative path inside the results."""

from __future__ import annotations

import html
import re
from pathlib import PurePosixPath
from typing import Any

__all__ = ["Markup", "code", "figure_path", "text"]

_MYST = set("\\*_[]{}$|!~^<>&\"'")  # start a role, link, image, math, emphasis, table cell or HTML
_FIGURE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\.png$")


class Markup(str):
    """Text that is already the book's own MyST (a `{doc}` link): `text` passes it through."""


def _plain(part: str) -> str:
    return "".join(html.escape(ch) if ch in "<>&\"'" else "\\" + ch if ch in _MYST else ch for ch in part)


def text(value: Any) -> str:
    """`value` as MyST text on one line that shows exactly these characters (see the module)."""
    if isinstance(value, Markup):
        return value
    one_line = " ".join(str(value).split())
    parts = one_line.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code span, every backtick escaped
        return "\\`".join(_plain(p) for p in parts)
    # inside a code span nothing is markup; only the table's cell separator is escaped there
    return "`".join(_plain(p) if i % 2 == 0 else p.replace("|", "\\|") for i, p in enumerate(parts))


def code(value: Any) -> Markup:
    """`value` as an inline code span (backticks inside replaced by quotes), on one line."""
    return Markup("`" + " ".join(str(value).split()).replace("`", "'").replace("|", "\\|") + "`")


def figure_path(path: Any, where: str) -> str:
    """`path` when it is a plain relative path of a PNG file (letters, digits, `_.-`, no `..`,
    not absolute); else a ValueError naming `where` (the manifest item) and the path."""
    rel = str(path)
    if not _FIGURE.match(rel) or ".." in PurePosixPath(rel).parts:
        raise ValueError(
            f"{where} names figure {rel[:200]!r}; allowed: a relative path inside the results, of "
            "letters, digits and _.- (no '..', not absolute), ending in .png"
        )
    return rel
