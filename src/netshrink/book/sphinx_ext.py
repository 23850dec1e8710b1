"""A Sphinx extension that makes any Jupyter Book build of this project the book of its runs.

Listed in `_config.yml`, so `jupyter-book build .` and `make html` build the same pages: each
chapter from its executed notebook of the run `sources.chapter_profiles` chooses (in a `quick`
book the newest run that matches the code, else the book's profile), with a note on which
profile, device and commit made it, its tables formatted for reading (`tables`), and its reading
flow (`reading`: what was found after the question, setup code folded); Results at a glance
and the rerunning page with their sections generated from those runs. The committed notebooks,
without outputs, are never touched: the extension hands Sphinx the executed notebook's text in
their place (`source-read`).

The book's profile: `$NETSHRINK_BOOK_PROFILE` (default `quick`); the results root:
`$NETSHRINK_RESULTS` (default `results/` beside `_config.yml`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from sphinx.util import logging as sphinx_logging

from netshrink.book import beside, pages, provenance, reading, sources, tables
from netshrink.book.chapter import Chapter
from netshrink.book.chapters import CHAPTERS

PROFILE_ENV = "NETSHRINK_BOOK_PROFILE"
GLANCE, RERUN = "book/glance", "book/rerun"
LOG = sphinx_logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


@dataclass
class BookRun:
    """What one build shows: the book's profile, the results root and each chapter's run."""

    profile: str
    results: Path
    root: Path
    chosen: dict[str, str]
    manifest: dict[str, Any]

    @classmethod
    def from_environment(cls, root: Path) -> BookRun:
        profile = os.environ.get(PROFILE_ENV) or "quick"
        results = (
            Path(os.environ["NETSHRINK_RESULTS"]) if os.environ.get("NETSHRINK_RESULTS") else root / "results"
        )
        chosen = sources.chapter_profiles(profile, results, root)
        return cls(profile, results, root, chosen, sources.book_manifest(profile, results, root))


def _docname(chapter: Chapter) -> str:
    return str(Path(chapter.notebook).with_suffix(""))


def chapter_page(run: BookRun, chapter: Chapter) -> str | None:
    """The text of the chapter's executed notebook, with the committed notebook's prose and tags
    (`sources.current_prose`), its tables rendered for reading from the run's CSV
    (`tables.reformat_outputs`), the blocks of `page_blocks` after its title and question, and
    the parameters cell folded beside a rerun command; None when the chapter has not been run
    (the committed notebook is shown then)."""
    used = run.chosen[chapter.name]
    executed = sources.executed_notebook(run.results, used, chapter)
    if not executed.is_file():
        return None
    page = sources.current_prose(
        nbformat.read(executed, as_version=4), nbformat.read(run.root / chapter.notebook, as_version=4)
    )
    tables.reformat_outputs(page, run.results / used, _captions(run.manifest, chapter.name))
    reading.fold_parameters(page, chapter, used)
    reading.drop_paths(page)
    blocks = [text for text in page_blocks(run, chapter, page) if text]
    page.cells[1:1] = [nbformat.v4.new_markdown_cell(text) for text in blocks]
    return nbformat.writes(page)


def page_blocks(run: BookRun, chapter: Chapter, page: Any) -> list[str | None]:
    """The generated blocks a chapter page shows after its title and question, in order (None:
    nothing to show). One list, so that a new block is one more entry."""
    used = run.chosen[chapter.name]
    prov = provenance.read(run.results, used, chapter.name, strict=False)  # a bad one: `record_problems`
    notes = sources.run_notes(chapter, used, run.results, run.root)
    return [
        provenance.page_note(prov) if prov is not None else None,
        beside.page_section(run.results, used, chapter.name, run.manifest),  # settings and verdicts
        "```{important}\n" + "\n\n".join(notes) + "\n```" if notes else None,
        reading.found_box(page.cells, run.manifest.get("compression", {}).get(chapter.name, [])),
    ]


def _captions(manifest: dict[str, Any], chapter: str) -> dict[str, str]:
    """{table file relative to its run: caption} of one chapter's items in the book's manifest."""
    out = {}
    for entry in manifest.get("items", {}).values():
        if entry.get("chapter") == chapter:
            out.update({f: c for f, c in entry.get("file_captions", {}).items() if f.endswith(".csv")})
    return out


def record_problems(run: BookRun) -> list[str]:
    """Every provenance record the book could show that is malformed (named with its field), and
    every result file that differs from its record's digest, is missing or is not in it."""
    problems = []
    for chapter in CHAPTERS.values():
        for profile in dict.fromkeys((sources.BEST, run.chosen[chapter.name])):
            try:
                prov = provenance.read(run.results, profile, chapter.name)
            except provenance.BadRecord as err:
                problems.append(str(err))
                continue
            if prov is not None and provenance.FILES in prov:
                problems += provenance.file_reasons(prov, run.results / profile / chapter.name)
    return problems


def prepare(app: Any) -> None:
    """Choose the runs, and copy the figures the glance page shows beside it (`book/figures/`,
    generated, git-ignored). A figure file missing from the results stays missing: the browser
    test catches it."""
    run = BookRun.from_environment(Path(app.srcdir))
    app.netshrink_book = run
    for problem in record_problems(run):  # such a chapter is shown from the book's own profile
        LOG.warning(f"netshrink: {problem}")
    glance, files = pages.glance_sections(run.manifest, run.results, CHAPTERS)
    run_figures = Path(app.srcdir) / "book" / pages.FIGURES_DIR
    shutil.rmtree(run_figures, ignore_errors=True)
    for target, source in files.items():
        if source.is_file():
            (run_figures.parent / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, run_figures.parent / target)
    pages.write_compression_map(run.manifest, run_figures)
    app.netshrink_glance = pages.sources_section(run, CHAPTERS) + "\n" + glance


def reread(app: Any, env: Any, added: set, changed: set, removed: set) -> list[str]:
    """The pages made from runs are read again on every build: their sources never change."""
    return [GLANCE, RERUN, *(_docname(c) for c in CHAPTERS.values())]


def substitute(app: Any, docname: str, source: list[str]) -> None:
    run: BookRun = app.netshrink_book
    if docname == GLANCE:
        source[0] += "\n" + app.netshrink_glance
    elif docname == RERUN:
        source[0] += "\n" + pages.parameter_sections(CHAPTERS.values(), run.root)
    else:
        for chapter in CHAPTERS.values():
            if docname == _docname(chapter):
                text = chapter_page(run, chapter)
                if text is not None:
                    source[0] = text


def add_static(app: Any, config: Any) -> None:
    """The book's own CSS (`static/netshrink.css`: tables that scroll with their first column
    kept, code wrapped within the page) beside the theme's."""
    config.html_static_path = [*config.html_static_path, str(STATIC)]
    app.add_css_file("netshrink.css")


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", add_static)
    app.connect("builder-inited", prepare)
    app.connect("env-get-outdated", reread)
    app.connect("source-read", substitute)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
