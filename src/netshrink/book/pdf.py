"""The book as one PDF, from the same sources and runs as the HTML book.

    python -m netshrink.book.pdf [--profile quick]      # what `make pdf` runs

Sphinx's `singlehtml` builder writes the whole book as one page (`_build/singlehtml`), which
Debian's Chromium prints (`--headless --print-to-pdf`); the PDF is written to `_build/pdf/` and
copied into `_build/html/` beside the pages, whose front page links to it. Needs `chromium` and
poppler's `pdfinfo` (Debian packages `chromium`, `poppler-utils`): without one, it stops before
any work with one line naming the package to install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from netshrink import paths
from netshrink.book.report import check_profile
from netshrink.io import atomic_path

__all__ = ["PDF_NAME", "MissingTool", "build_pdf", "page_count", "print_to_pdf", "require"]

PDF_NAME = "netshrink.pdf"
PACKAGES = {"chromium": "chromium", "pdfinfo": "poppler-utils", "pdftoppm": "poppler-utils",
            "pdftotext": "poppler-utils"}  # fmt: skip
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--no-pdf-header-footer",
                  "--run-all-compositor-stages-before-draw", "--virtual-time-budget=20000"]  # fmt: skip


class MissingTool(RuntimeError):
    """A program the PDF needs is not installed; the message names its Debian package."""


def require(tool: str) -> str:
    """The path of `tool` (`chromium`: also `$NETSHRINK_CHROMIUM`), or MissingTool naming the
    Debian package that installs it."""
    candidates = (
        [os.environ.get("NETSHRINK_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
        if tool == "chromium"
        else [tool]
    )
    for candidate in candidates:
        if candidate and (found := shutil.which(candidate)):
            return found
    package = PACKAGES.get(tool, tool)
    raise MissingTool(f"the PDF needs {tool}: install Debian's package with `apt-get install {package}`")


def print_to_pdf(page: Path, out: Path, timeout: float = 300.0) -> Path:
    """Print the HTML `page` to the PDF `out` with headless Chromium (a fresh profile folder,
    no network); `out` is written whole or not at all."""
    chromium = require("chromium")
    with tempfile.TemporaryDirectory(prefix="netshrink-chromium-") as profile, atomic_path(out) as tmp:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--print-to-pdf={tmp}",
            page.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"chromium could not print {page} ({proc.returncode}): {proc.stderr[-2000:]}")
    return out


def page_count(pdf: Path) -> int:
    """The number of pages of `pdf` (poppler's `pdfinfo`)."""
    info = subprocess.run([require("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def single_page(root: Path) -> Path:
    """The `singlehtml` build's one page, at the top of its folder. Sphinx writes it under the
    root document's name (`book/intro.html`) with links relative to the folder's top, so a copy
    there (`book.html`) is the page whose styles and images load."""
    out = root / "_build" / "singlehtml"
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    page = out / "book.html"
    shutil.copy(out / f"{toc['root']}.html", page)
    return page


def build_pdf(profile: str = "quick", *, root: Path | None = None, results: Path | None = None) -> Path:
    """Build the book of `profile` as one PDF: `<root>/_build/pdf/netshrink.pdf`, also copied to
    `<root>/_build/html/netshrink.pdf` (where the front page links to it). Returns the PDF."""
    from netshrink.book.runner import build_book  # papermill and Sphinx only when a PDF is made

    check_profile(profile)
    require("chromium"), require("pdfinfo")  # before any work
    root = root or paths.project_root()
    build_book(profile, root=root, results=results or paths.results_root(), builder="singlehtml")
    pdf = print_to_pdf(single_page(root), root / "_build" / "pdf" / PDF_NAME)
    published = root / "_build" / "html" / PDF_NAME
    published.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(published) as tmp:
        shutil.copy(pdf, tmp)
    return pdf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="quick", help="the book's profile (default quick)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        pdf = build_pdf(args.profile)
    except (MissingTool, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"error: {' '.join(str(err).split())[:2000]}", file=sys.stderr)
        return 1
    print(f"{pdf} ({page_count(pdf)} pages, {pdf.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - start:.0f} s; published as _build/html/{PDF_NAME}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
