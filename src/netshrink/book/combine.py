"""Chapter results made elsewhere, taken into a results folder whole: `adopt` (a run on another
machine, such as `tools/device-chapter`'s results.tgz) and `merge` (chapters run as separate
jobs, such as the CI matrix of `.github/workflows/chapters.yml`)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from netshrink.book import provenance, sources
from netshrink.book.chapters import CHAPTERS
from netshrink.book.report import PROFILES, publish
from netshrink.io import write_with


def adopt(source: Path, profile: str, results: Path) -> list[str]:
    """Take the finished chapters of `profile` from another results root (a folder, or the
    `results.tgz` of `tools/device-chapter`) into `results`: each chapter's folder is swapped in
    whole with its manifest entries (`report.publish`) and its executed notebook copied. Only
    chapters with a provenance record are taken. Returns the chapters adopted."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if source.is_file():
            with tarfile.open(source) as tar:
                tar.extractall(root, filter="data")
        elif source.is_dir():
            shutil.copytree(source, root, dirs_exist_ok=True)
        else:
            raise ValueError(f"adopt={source} is neither a results folder nor a results.tgz")
        found = [c for c in CHAPTERS.values() if provenance.read(root, profile, c.name) is not None]
        if not found:
            raise ValueError(f"adopt={source} holds no finished chapter of profile {profile!r}")
        for chapter in found:
            notebook = sources.executed_notebook(root, profile, chapter)
            if not notebook.is_file():
                raise ValueError(f"adopt={source}: chapter {chapter.name!r} has no executed notebook")
            _take(chapter, profile, root, notebook, results)
    return [c.name for c in found]


def merge(roots: list[Path], profile: str, results: Path, expected: list[str] | None = None) -> list[str]:
    """Merge chapters of `profile` run separately (each root a results folder, such as a CI
    matrix job's artifact) into `results`, as one run of them all would have left it: each
    chapter's folder, manifest entries and executed notebook (`report.publish`).

    Everything is checked before anything is written: each root holds finished chapters of
    `profile` (with their provenance), no chapter comes twice, all come from one commit, and
    every chapter of `expected` (default: all) is there; an error names the chapter and root.
    Returns the chapters merged."""
    found: dict[str, Path] = {}
    commits: dict[str, str] = {}
    for root in roots:
        if not (Path(root) / profile).is_dir():
            held = (
                sorted(p.name for p in Path(root).iterdir() if p.name in PROFILES)
                if Path(root).is_dir()
                else []
            )
            raise ValueError(
                f"merge: {root} holds no {profile!r} results" + (f" (it holds {held})" if held else "")
            )
        here = [c for c in CHAPTERS.values() if (Path(root) / profile / c.name).is_dir()]
        if not here:
            raise ValueError(f"merge: {root} holds no chapter of profile {profile!r}")
        for chapter in here:
            prov = provenance.read(Path(root), profile, chapter.name)
            if prov is None:
                raise ValueError(f"merge: chapter {chapter.name!r} in {root} has no {provenance.RECORD} "
                                 "(not a finished run)")  # fmt: skip
            if prov.get("profile") != profile:
                raise ValueError(f"merge: chapter {chapter.name!r} in {root} was run as profile "
                                 f"{prov.get('profile')!r}, not {profile!r}")  # fmt: skip
            if chapter.name in found:
                raise ValueError(f"merge: chapter {chapter.name!r} is present twice, in "
                                 f"{found[chapter.name]} and {root}")  # fmt: skip
            if not sources.executed_notebook(Path(root), profile, chapter).is_file():
                raise ValueError(f"merge: chapter {chapter.name!r} in {root} has no executed notebook")
            found[chapter.name], commits[chapter.name] = Path(root), str(prov.get("commit"))
    if len(set(commits.values())) > 1:
        made = ", ".join(f"{name} by {commit[:10]}" for name, commit in sorted(commits.items()))
        raise ValueError(f"merge: the chapters were made by different commits ({made}); rerun them from one")
    wanted = list(CHAPTERS) if expected is None else expected
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ValueError(f"merge: chapter(s) {', '.join(missing)} missing (expected: {', '.join(wanted)})")
    for name, root in found.items():
        chapter = CHAPTERS[name]
        with tempfile.TemporaryDirectory() as tmp:  # publish moves folders: the sources stay as they are
            shutil.copytree(root / profile / name, Path(tmp) / profile / name)
            shutil.copy(root / profile / "manifest.json", Path(tmp) / profile / "manifest.json")
            _take(chapter, profile, Path(tmp), sources.executed_notebook(root, profile, chapter), results)
    return list(found)


def _take(chapter, profile: str, root: Path, notebook: Path, results: Path) -> None:
    """Copy the chapter's executed `notebook` into `results` and publish its folder and
    manifest entries from the results root `root` (which `publish` moves from)."""
    write_with(sources.executed_notebook(results, profile, chapter), lambda path: shutil.copy(notebook, path))
    publish(chapter.name, profile, root, results)
