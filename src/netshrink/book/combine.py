"""Chapter results made elsewhere, taken into a results folder whole: `adopt` (a run on another
machine, such as `tools/device-chapter`'s results.tgz) and `merge` (chapters run as separate
jobs, such as the CI matrix of `.github/workflows/chapters.yml`).

What arrives is untrusted (`untrusted`): it is copied file by file into a scratch folder inside
the results root (so every later move is a rename on one filesystem) and checked there, every
chapter, before anything of the results is touched. The chapters are then published under
their run locks (a run of the same chapter going on refuses it), each by `report.publish`'s
journaled swap; a failure rolls back the chapters this call had already published."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from netshrink import paths
from netshrink.book import provenance, sources, untrusted
from netshrink.book.chapter import Chapter
from netshrink.book.chapters import CHAPTERS
from netshrink.book.report import PROFILES, publish, read_manifest, withdraw
from netshrink.io import atomic_path, hold_lock, remove_stale, write_json


def chapter_lock(results: Path, profile: str, name: str) -> Path:
    """The run lock of a chapter (`runner.running_dir(results, profile) / <name>.lock`)."""
    return results / profile / ".running" / f"{name}.lock"


@contextmanager
def _scratch(results: Path, what: str) -> Iterator[Path]:
    """A scratch folder inside `results` (created if need be, and removed again with the
    scratch when nothing was published), removed at the end; a killed process's is removed by
    the next run's `io.remove_stale`."""
    created = not results.exists()
    results.mkdir(parents=True, exist_ok=True)
    remove_stale(results)
    scratch = results / f".{what}.run-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if created and not any(results.iterdir()):
            results.rmdir()


def _parts(profile: str, chapters: list[Chapter]) -> list[str]:
    """What of a results root a chapter's publication takes: its folder, the manifest, its
    executed notebook."""
    out = [f"{profile}/manifest.json"]
    for chapter in chapters:
        out += [f"{profile}/{chapter.name}", f"{profile}/notebooks/{Path(chapter.notebook).name}"]
    return out


def _known_commit(commit: str, what: str) -> None:
    """`commit` is a full hash this repository holds (when it is a git checkout)."""
    if not untrusted.HEX40.match(commit):
        raise ValueError(f"{what}: the run names commit {commit[:50]!r}; allowed: a full commit hash")
    root = paths.project_root()
    if provenance._git(root, "rev-parse", "--git-dir") is not None and (
        provenance._git(root, "cat-file", "-e", f"{commit}^{{commit}}") is None
    ):
        raise ValueError(f"{what}: the run was made by commit {commit[:10]}, which this repository does not "
                         "hold; allowed: results of this project's commits (fetch it first)")  # fmt: skip


def adopt(source: Path, profile: str, results: Path) -> list[str]:
    """Take the finished chapters of `profile` from another results root (a folder, or the
    `results.tgz` of `tools/device-chapter`) into `results`: each chapter's folder is swapped in
    whole with its manifest entries (`report.publish`) and its executed notebook. Only chapters
    with a provenance record are taken; each is checked first (`untrusted.check_chapter`: files,
    record of this profile, chapter and a commit of this repository, manifest entries).
    Returns the chapters adopted."""
    what = f"adopt={source}"
    source = Path(source)
    with _scratch(results, "adopt") as scratch:
        if source.is_file():
            untrusted.unpack(source, scratch / "source", what)
            origin = scratch / "source"
        elif source.is_dir():
            origin = source
        else:
            raise ValueError(f"{what} is neither a results folder nor a results.tgz")
        found = [c for c in CHAPTERS.values() if (origin / profile / c.name / provenance.RECORD).exists()]
        if not found:
            raise ValueError(f"{what} holds no finished chapter of profile {profile!r}")
        staged = scratch / "staged"
        untrusted.stage(origin, _parts(profile, found), staged, what)
        for chapter in found:
            prov = untrusted.check_chapter(staged, profile, chapter, what)
            _known_commit(prov["commit"], f"{what}: chapter {chapter.name!r}")
        _publish([(c, staged) for c in found], profile, results, scratch)
    return [c.name for c in found]


def _found(roots: list[Path], profile: str, wanted: list[str]) -> dict[str, Path]:
    """{chapter: the root holding it}, each chapter of `wanted` once and no other."""
    found: dict[str, Path] = {}
    for root in map(Path, roots):
        if not (root / profile).is_dir():
            held = sorted(p.name for p in root.iterdir() if p.name in PROFILES) if root.is_dir() else []
            raise ValueError(
                f"merge: {root} holds no {profile!r} results" + (f" (it holds {held})" if held else "")
            )
        here = [c for c in CHAPTERS.values() if (root / profile / c.name).is_dir()]
        if not here:
            raise ValueError(f"merge: {root} holds no chapter of profile {profile!r}")
        for chapter in here:
            if chapter.name in found:
                raise ValueError(f"merge: chapter {chapter.name!r} is present twice, in "
                                 f"{found[chapter.name]} and {root}")  # fmt: skip
            if chapter.name not in wanted:
                raise ValueError(f"merge: chapter {chapter.name!r} in {root} was not selected; allowed: "
                                 f"{', '.join(wanted)} (--chapters)")  # fmt: skip
            found[chapter.name] = root
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ValueError(f"merge: chapter(s) {', '.join(missing)} missing (expected: {', '.join(wanted)})")
    return found


def merge(roots: list[Path], profile: str, results: Path, expected: list[str] | None = None) -> list[str]:
    """Merge chapters of `profile` run separately (each root a results folder, such as a CI
    matrix job's artifact) into `results`, as one run of them all would have left it: each
    chapter's folder, manifest entries and executed notebook (`report.publish`).

    Everything is checked before anything is written: each root holds finished chapters of
    `profile` (`untrusted.check_chapter`), every chapter of `expected` (default: all) comes
    exactly once and no other, all from one commit; an error names the chapter and root.
    Returns the chapters merged."""
    wanted = list(CHAPTERS) if expected is None else list(expected)
    found = _found(roots, profile, wanted)
    with _scratch(results, "merge") as scratch:
        staged: dict[str, Path] = {}
        for i, root in enumerate(dict.fromkeys(found.values())):
            names = [n for n, r in found.items() if r == root]
            parts = _parts(profile, [CHAPTERS[n] for n in names])
            untrusted.stage(root, parts, scratch / str(i), f"merge: {root}")
            staged.update(dict.fromkeys(names, scratch / str(i)))
        commits = {n: untrusted.check_chapter(staged[n], profile, CHAPTERS[n], f"merge: {found[n]}")["commit"]
                   for n in found}  # fmt: skip
        if len(set(commits.values())) > 1:
            made = ", ".join(f"{name} by {commit[:10]}" for name, commit in sorted(commits.items()))
            raise ValueError(f"merge: the chapters were made by different commits ({made}); rerun from one")
        if not untrusted.HEX40.match(next(iter(commits.values()))):
            raise ValueError(f"merge: the runs name commit {next(iter(commits.values()))[:50]!r}; allowed: a "
                             "full commit hash")  # fmt: skip
        _publish([(CHAPTERS[n], staged[n]) for n in found], profile, results, scratch)
    return list(found)


def _publish(taken: list[tuple[Chapter, Path]], profile: str, results: Path, scratch: Path) -> None:
    """Publish each (chapter, staged root) under the chapters' run locks, its executed notebook
    replaced only once its folder is in; on an error the chapters published before it get their
    previous results back (hard-linked aside first) and the error is raised."""
    previous = scratch / "previous"
    write_json(previous / profile / "manifest.json", read_manifest(profile, results))
    done: list[Chapter] = []
    with ExitStack() as locks:
        for chapter, _ in taken:
            locks.enter_context(hold_lock(chapter_lock(results, profile, chapter.name),
                                          f"chapter {chapter.name!r} ({profile})",
                                          {"chapter": chapter.name, "profile": profile}))  # fmt: skip
        try:
            for chapter, staged in taken:
                _keep(chapter, profile, results, previous)
                notebook = sources.executed_notebook(results, profile, chapter)
                with atomic_path(notebook) as tmp:
                    shutil.copyfile(sources.executed_notebook(staged, profile, chapter), tmp)
                    publish(chapter.name, profile, staged, results)
                done.append(chapter)
        except BaseException:
            for chapter in reversed(done):
                _restore(chapter, profile, results, previous)
            raise


def _keep(chapter: Chapter, profile: str, results: Path, previous: Path) -> None:
    """Hard-link the chapter's current folder and notebook under `previous` (no data copied)."""
    folder = results / profile / chapter.name
    if folder.is_dir():
        shutil.copytree(folder, previous / profile / chapter.name, copy_function=os.link)
    notebook = sources.executed_notebook(results, profile, chapter)
    if notebook.is_file():
        kept = sources.executed_notebook(previous, profile, chapter)
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.link(notebook, kept)


def _restore(chapter: Chapter, profile: str, results: Path, previous: Path) -> None:
    """Put back what `_keep` kept of the chapter (or remove it where it had nothing)."""
    notebook, kept = (sources.executed_notebook(r, profile, chapter) for r in (results, previous))
    if (previous / profile / chapter.name).is_dir():
        publish(chapter.name, profile, previous, results)
    else:
        withdraw(chapter.name, profile, results)
    if kept.is_file():
        with atomic_path(notebook) as tmp:
            shutil.copyfile(kept, tmp)
    else:
        notebook.unlink(missing_ok=True)
