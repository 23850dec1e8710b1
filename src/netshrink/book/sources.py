"""Which run each chapter of the book shows: the best results at hand.

A book of the `quick` profile (what `make book`, `make html` and `jupyter-book build .` make)
shows a chapter from its committed `full` results when they exist and still match the code
(`provenance.stale`), and from the chapter's run of the book's profile otherwise. A book of
another profile shows that profile alone. `book_manifest` merges the chosen runs' manifests,
each item marked with the profile that made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from netshrink.book import provenance
from netshrink.book.chapter import Chapter
from netshrink.book.chapters import CHAPTERS
from netshrink.book.report import check_profile, read_manifest

BEST = "full"  # the profile a quick book prefers, chapter by chapter


def executed_notebook(results: Path, profile: str, chapter: Chapter) -> Path:
    """`results/<profile>/notebooks/<notebook>`: the chapter's executed notebook of that run."""
    return results / profile / "notebooks" / Path(chapter.notebook).name


def current_prose(executed: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`executed` with the markdown cells of `source`, the committed notebook, matched in order
    (papermill's injected-parameters cell skipped): a fix of the prose reaches a page whose hours-long
    run is committed without rerunning it (its code cells are the run's: `provenance.stale`). When
    the two notebooks' cells do not pair up, `executed` is returned as it ran."""
    ran = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if [c.cell_type for c in ran] != [c.cell_type for c in source.cells]:
        return executed
    for cell, now in zip(ran, source.cells, strict=True):
        if cell.cell_type == "markdown":
            cell.source = now.source
    return executed


def chapter_profiles(profile: str, results: Path, root: Path) -> dict[str, str]:
    """{chapter name: the profile its page shows} for a book of `profile`."""
    check_profile(profile)
    chosen = {}
    for chapter in CHAPTERS.values():
        best = (
            profile == "quick"
            and executed_notebook(results, BEST, chapter).is_file()
            and provenance.read(results, BEST, chapter.name, strict=False) is not None
            and not provenance.stale(chapter, BEST, results, root)
        )
        chosen[chapter.name] = BEST if best else profile
    return chosen


def book_manifest(profile: str, results: Path, root: Path) -> dict[str, Any]:
    """The manifest of the book of `profile`: each chapter's items, comparisons and compressed
    models from the run its page shows; every item carries the `profile` that made it."""
    chosen = chapter_profiles(profile, results, root)
    runs = {p: read_manifest(p, results) for p in set(chosen.values())}
    merged: dict[str, Any] = {"profile": profile, "chapters": chosen, "items": {}}
    for key in ("comparisons", "compression"):
        merged[key] = {}
    for chapter, used in chosen.items():
        run = runs[used]
        for item, entry in run["items"].items():
            if entry.get("chapter") == chapter:
                merged["items"][item] = {**entry, "profile": used}
        for key in ("comparisons", "compression"):
            if chapter in run.get(key, {}):
                merged[key][chapter] = run[key][chapter]
    return merged
