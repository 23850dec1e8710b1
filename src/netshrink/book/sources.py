"""Which run each chapter of the book shows: the run you made last.

A book of the `quick` profile (what `make book`, `make html` and `jupyter-book build .` make)
shows each chapter from its newest finished run of any profile whose code still matches the
notebook (`fresh`): the committed `full` results on a fresh clone, and a `quick` or `smoke` run,
or one with other parameters (`-p`), as soon as you make it; `run_notes` say on the page what
differs from the profile and where the committed results are. A chapter with no such run shows
the book's profile. A book of another profile shows that profile alone. `book_manifest` merges
the chosen runs' manifests, each item marked with the profile that made it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import nbformat

from netshrink.book import provenance
from netshrink.book.chapter import RUNTIME, Chapter
from netshrink.book.chapters import CHAPTERS
from netshrink.book.report import PROFILES, check_profile, read_manifest

BEST = "full"  # the committed, thesis-scale profile


def executed_notebook(results: Path, profile: str, chapter: Chapter) -> Path:
    """`results/<profile>/notebooks/<notebook>`: the chapter's executed notebook of that run."""
    return results / profile / "notebooks" / Path(chapter.notebook).name


def current_prose(executed: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`executed` with the markdown cells of `source`, the committed notebook, matched in order
    (papermill's injected-parameters cell skipped): a fix of the prose reaches a page whose hours-long
    run is committed without rerunning it (its code cells are the run's: `provenance.stale`), and
    the committed cells' tags (`hide-input`: how the page shows a cell, not what it computes) join
    the run's. When the two notebooks' cells do not pair up, `executed` is returned as it ran."""
    ran = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if [c.cell_type for c in ran] != [c.cell_type for c in source.cells]:
        return executed
    for cell, now in zip(ran, source.cells, strict=True):
        if cell.cell_type == "markdown":
            cell.source = now.source
        tags = cell.metadata.get("tags", [])  # how the page shows the cell (hide-input, ...): not its code
        cell.metadata["tags"] = [*tags, *(t for t in now.metadata.get("tags", []) if t not in tags)]
    return executed


def fresh(chapter: Chapter, profile: str, results: Path, root: Path) -> bool:
    """Whether `results/<profile>` holds a finished run of `chapter` that matches the code: its
    executed notebook, its provenance record, every item of the chapter, and the notebook's code
    as it ran (other parameters than the profile's do not count: that run is what was asked)."""
    if not executed_notebook(results, profile, chapter).is_file():
        return False
    if provenance.read(results, profile, chapter.name, strict=False) is None:  # none, or malformed
        return False
    reasons = provenance.stale(chapter, profile, results, root)
    return not [r for r in reasons if not r.startswith("parameters differ")]


def _date(results: Path, profile: str, chapter: Chapter) -> str:
    prov = provenance.read(results, profile, chapter.name, strict=False) or {}
    return str(prov.get("date", ""))


def chapter_profiles(profile: str, results: Path, root: Path) -> dict[str, str]:
    """{chapter name: the profile its page shows} for a book of `profile`: in a `quick` book the
    newest `fresh` run of any profile, else `profile`; in a book of another profile, `profile`."""
    check_profile(profile)
    chosen = {}
    for chapter in CHAPTERS.values():
        candidates = PROFILES if profile == "quick" else (profile,)
        runs = [p for p in candidates if fresh(chapter, p, results, root)]
        chosen[chapter.name] = max(runs, key=lambda p: _date(results, p, chapter)) if runs else profile
    return chosen


def changed_parameters(chapter: Chapter, prov: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{name: (value the run used, the profile's value)} for every parameter a run set
    otherwise than its profile (device and precision left out)."""
    asked = {k: v for k, v in chapter.parameters(prov["profile"]).items() if k not in RUNTIME}
    ran = {k: v for k, v in prov["parameters"].items() if k not in RUNTIME}
    return {
        k: (ran.get(k), asked.get(k)) for k in sorted(asked.keys() | ran.keys()) if asked.get(k) != ran.get(k)
    }


def later_failure(chapter: Chapter, shown: str, results: Path) -> Path | None:
    """The executed notebook of a run of `chapter` that failed after the run shown (`shown`,
    its profile), or None."""
    prov = provenance.read(results, shown, chapter.name)
    since = dt.datetime.fromisoformat(prov["date"]).timestamp() if prov else 0.0
    failed = [executed_notebook(results, p, chapter).with_suffix(".failed.ipynb") for p in PROFILES]
    failed = [f for f in failed if f.is_file() and f.stat().st_mtime > since]
    return max(failed, key=lambda f: f.stat().st_mtime) if failed else None


def run_notes(chapter: Chapter, shown: str, results: Path, root: Path) -> list[str]:
    """What a reader (and the console) should know about the run a page shows: parameters other
    than its profile's, the committed full results it stands in front of, a later run that failed.
    Plain sentences with `code` spans; empty when there is nothing to say."""
    prov = provenance.read(results, shown, chapter.name)
    notes = []
    if prov is not None:
        changed = changed_parameters(chapter, prov)
        if changed:
            ran = ", ".join(f"`{k}` = `{v!r}`" for k, (v, _) in changed.items())
            profile_values = ", ".join(f"`{p!r}`" for _, p in changed.values())
            notes.append(f"This run set {ran} (the `{shown}` profile: {profile_values}).")
    if shown != BEST and fresh(chapter, BEST, results, root):
        where = results / BEST / chapter.name
        where = where.relative_to(root) if where.is_relative_to(root) else where
        notes.append(f"This page shows your `{shown}` run, the newest; the committed `{BEST}` results are "
                     f"in `{where}` (remove `{shown}/{chapter.name}` from the results to show them "
                     f"again).")  # fmt: skip
    failed = later_failure(chapter, shown, results)
    if failed is not None:
        notes.append(f"A later run failed (`{failed.name}`, in `{failed.parent}`): this page still shows the "
                     f"last good run.")  # fmt: skip
    return notes


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


def needing_a_run(chapters: list[Chapter], profile: str, results: Path, root: Path) -> list[Chapter]:
    """The chapters of `chapters` that a book of `profile` has no results for that match the
    code (`fresh`); says of each chapter whether it runs and why."""
    shown = chapter_profiles(profile, results, root)
    out = []
    for chapter in chapters:
        used = shown[chapter.name]
        if fresh(chapter, used, results, root):
            date = (provenance.read(results, used, chapter.name) or {}).get("date", "?")[:10]
            print(f"== chapter {chapter.name}: the book shows its {used} run of {date}, which matches the "
                  f"code; not run again (--all, or `make book ALL=1`, runs it)", flush=True)  # fmt: skip
            continue
        ran = provenance.read(results, used, chapter.name) is not None
        reasons = provenance.stale(chapter, used, results, root) if ran else ["no results yet"]
        print(f"== chapter {chapter.name}: runs ({'; '.join(reasons)})", flush=True)
        out.append(chapter)
    return out


def shown_runs(profile: str, results: Path, root: Path) -> list[str]:
    """One line per chapter: which run its page shows, and what the page says about it."""
    lines = []
    for name, used in chapter_profiles(profile, results, root).items():
        chapter = CHAPTERS[name]
        prov = provenance.read(results, used, name)
        if prov is None or not executed_notebook(results, used, chapter).is_file():
            lines.append(f"page {name}: not run yet, shows the notebook without outputs")
            continue
        where = results / used / name
        lines.append(f"page {name}: the {used} run of {prov['date'][:16].replace('T', ' ')} ({where})")
        lines += [f"   {note.replace('`', '')}" for note in run_notes(chapter, used, results, root)]
    return lines
