"""Open every page of the built book in headless Chromium, as a reader would, and report what is
broken: a link to a page or file that does not exist, an image that does not load, a console
error, a request the local server cannot answer, or a figure of the run's manifest missing from
the Results at a glance page. Saves a screenshot of each chapter's first screen.

    python -m netshrink.book.sitecheck [_build/html] [--profile quick]

Chromium is Debian's `chromium` (or `$NETSHRINK_CHROMIUM`), driven by Playwright.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from netshrink import paths
from netshrink.book.pdf import PDF_NAME
from netshrink.book.sources import book_manifest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GLANCE_PAGE = "book/glance.html"
FRONT_PAGE = "book/intro.html"
REFRESH = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.IGNORECASE)


def find_chromium() -> str:
    """The Chromium executable: `$NETSHRINK_CHROMIUM`, else `chromium` on the PATH."""
    for candidate in (os.environ.get("NETSHRINK_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    raise RuntimeError(
        "no Chromium found: install Debian's package (apt-get install chromium) or set NETSHRINK_CHROMIUM "
        "to the browser's executable"
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` on a free localhost port for the duration of the block; yield its URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SiteReport:
    """What the browser saw: the pages opened, the problems found, the screenshots saved."""

    pages: list[str]
    problems: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    images: dict[str, list[str]] = field(default_factory=dict)  # page -> loaded image sources


def html_pages(html: Path) -> list[str]:
    """Every HTML page of the book, relative to its root (Sphinx's own folders left out)."""
    skip = ("_static/", "_sources/", "_images/", "_sphinx_design_static/")
    return sorted(
        str(p.relative_to(html))
        for p in html.rglob("*.html")
        if not str(p.relative_to(html)).startswith(skip)
    )


class _Cells(HTMLParser):
    """The text of every table cell of an HTML page, its `code` spans left out."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._cell: list[str] | None = None
        self._code = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("td", "th"):
            self._cell, self._code = [], 0
        elif tag == "code":
            self._code = self._code + 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "code":
            self._code = max(self._code - 1, 0)

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._code:  # a value in code is typed as is
            self._cell.append(data)


NUMERAL = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")
MAX_SIGNIFICANT = 6


def raw_number(numeral: str, whole_cell: bool = False) -> bool:
    """Whether a numeral prints a number as a machine wrote it, not for reading: more than
    MAX_SIGNIFICANT significant digits after a decimal point, 4 or more trailing zeros after it,
    or (a cell of one integer) 5 or more digits without thousands separators."""
    plain = numeral.lstrip("-")
    if "." in plain and "e" not in plain.lower():
        whole, fraction = plain.replace(",", "").split(".")
        digits = (whole + fraction).lstrip("0")
        return len(digits) > MAX_SIGNIFICANT or fraction.endswith("0000")
    return whole_cell and "," not in plain and len(plain) >= 5 and plain.isdigit()


def raw_cells(text: str) -> list[str]:
    """The table cells of an HTML page that print a raw number (`raw_number`)."""
    parser = _Cells()
    parser.feed(text)
    return [c for c in parser.cells if any(raw_number(m, m == c) for m in NUMERAL.findall(c))]


def _target_exists(html: Path, base: str, url: str) -> bool:
    path = unquote(urlsplit(url).path)[len(urlsplit(base).path) :]
    target = html / path
    return (target / "index.html").is_file() if path.endswith("/") or path == "" else target.is_file()


def _page_problems(page: Any, html: Path, base: str, rel: str, chapter: bool, pdf: bool) -> list[str]:
    """What is wrong with one open page: broken links (the PDF's only with `pdf`), table cells
    printing raw numbers, a chapter page without folded code, a front page without the PDF link."""
    out = []
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    for href in hrefs:
        if (
            (pdf or not href.endswith("/" + PDF_NAME))
            and href.startswith(base)
            and not _target_exists(html, base, href)
        ):
            out.append(f"broken link: {href[len(base) :]}")
    out += [
        f"table cell prints a raw number: {c!r}" for c in raw_cells((html / rel).read_text(errors="replace"))
    ]
    if chapter and not page.eval_on_selector_all("details.hide", "els => els.filter(e => !e.open).length"):
        out.append("no folded code cell (hide-input / hide-cell)")
    if pdf and rel == FRONT_PAGE and not any(h.endswith("/" + PDF_NAME) for h in hrefs):
        out.append(f"no link to the book's PDF ({PDF_NAME})")
    return out


def check_site(
    html: Path,
    manifest: dict[str, Any] | None = None,
    screenshot_dir: Path | None = None,
    chapters_folder: str = "chapters/",
    pdf: bool = False,
) -> SiteReport:
    """Open every page of `html` in headless Chromium and collect the problems (`_page_problems`)."""
    from playwright.sync_api import sync_playwright

    html = Path(html)
    if not (html / "index.html").is_file():
        raise FileNotFoundError(f"html={html} holds no built book (no index.html); build it with `make book`")
    report = SiteReport(html_pages(html))
    with serve(html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        current = {"page": ""}

        def problem(text: str) -> None:
            report.problems.append(f"{current['page']}: {text}")

        page.on("console", lambda msg: problem(f"console error: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda err: problem(f"script error: {err}"))
        page.on("requestfailed", lambda req: problem(f"request failed: {req.url} ({req.failure})"))
        page.on(
            "response", lambda res: problem(f"HTTP {res.status}: {res.url}") if res.status >= 400 else None
        )
        for rel in report.pages:
            current["page"] = rel
            redirect = REFRESH.search((html / rel).read_text(errors="replace"))
            if redirect:  # a redirecting page (index.html): its target must exist
                if not _target_exists(html, base, urljoin(base + rel, redirect.group(1))):
                    problem(f"redirects to a missing page: {redirect.group(1)}")
                continue
            page.goto(base + rel, wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.currentSrc || e.src, e.complete && e.naturalWidth > 0])"
            )
            report.images[rel] = [src for src, ok in images if ok]
            for src, ok in images:
                if not ok:
                    problem(f"image does not load: {src}")
            for text in _page_problems(page, html, base, rel, rel.startswith(chapters_folder), pdf):
                problem(text)
            if screenshot_dir is not None and rel.startswith(chapters_folder):
                shot = Path(screenshot_dir) / f"{Path(rel).stem}.png"
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot))
                report.screenshots.append(shot)
        browser.close()
    if manifest is not None:
        report.problems += _missing_figures(manifest, report.images.get(GLANCE_PAGE, []))
    return report


def _missing_figures(manifest: dict[str, Any], shown: list[str]) -> list[str]:
    """A problem for each figure of the run's `manifest` that the glance page (images `shown`) lacks."""
    problems = []
    for item, entry in sorted(manifest.get("items", {}).items()):
        for rel in entry["files"]:  # every image, also of items that are a table and a figure both
            name = Path(rel).name
            if rel.endswith(".png") and not any(unquote(src).endswith("/" + name) for src in shown):
                problems.append(f"{GLANCE_PAGE}: figure {item} of the manifest ({rel}) is not shown")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("html", nargs="?", default=None, help="the built book (default: _build/html)")
    parser.add_argument(
        "--profile",
        default="quick",
        help="the book's profile (a quick book shows full results where they match the code)",
    )
    parser.add_argument("--pdf", action="store_true", help="the front page must link to the PDF (`make pdf`)")
    args = parser.parse_args(argv)
    html = Path(args.html) if args.html else paths.project_root() / "_build" / "html"
    shots = paths.results_root() / args.profile / "screenshots"
    manifest = book_manifest(args.profile, paths.results_root(), paths.project_root())
    report = check_site(html, manifest, shots, pdf=args.pdf)
    for line in report.problems:
        print(f"  {line}")
    print(f"{len(report.pages)} pages opened in Chromium, {len(report.problems)} problems")
    print(f"screenshots of the chapters in {shots}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
