"""Run the book's chapters with papermill and build the HTML book.

    python -m netshrink.book.runner --profile quick [--chapters baselines] [--no-build]

Each chapter notebook runs with its profile's parameters into
`results/<profile>/notebooks/<notebook>.ipynb` (written only when the run succeeds);
a failing chapter stops the run and prints the failing cell. The book is then built by
`jupyter-book build`, whose `sphinx_ext` shows each chapter's executed notebook in place of the
committed one (which stays free of outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from argparse import RawDescriptionHelpFormatter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat

from netshrink import paths, progress
from netshrink.book import provenance, sources, sphinx_ext
from netshrink.book.cells import check_parameters, check_profile_override, parse_overrides
from netshrink.book.chapter import MODELS_RECORD, Chapter
from netshrink.book.chapters import select
from netshrink.book.combine import adopt, merge
from netshrink.book.executed import ChapterFailed, execute, keep_failed, print_warnings, slowest_cells
from netshrink.book.report import check_profile, publish, recover
from netshrink.book.standalone import STAGED_ENV
from netshrink.io import Busy, atomic_path, exit_on_sigterm, hold_lock, remove_stale, write_json


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (which the kernel inherits) for the duration of the block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_chapter(
    chapter: Chapter,
    profile: str,
    *,
    root: Path | None = None,
    results: Path | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    status_every: float | None = None,
) -> Path:
    """Execute one chapter; return the executed notebook's path.

    Only one run of a chapter and profile at a time: a second one raises `io.Busy` naming the
    running process. While it runs, the chapter writes where it is (cell, stage, model, epoch,
    time left) to `running_dir(...)/<chapter>.status.json`; with `status_every` (seconds) this
    function also prints it that often when it changed. Models already trained come from the
    cache and an interrupted training resumes from its last epoch, so a rerun after a kill
    picks up where the killed run stopped."""
    root = root or paths.project_root()
    results = results or paths.results_root()
    check_profile_override(check_profile(profile), {chapter.name: overrides or {}})
    params = check_parameters(chapter, {**chapter.parameters(profile), **(overrides or {})}, root)
    running = running_dir(results, profile)
    with hold_lock(running / f"{chapter.name}.lock", f"chapter {chapter.name!r} ({profile})",
                   {"chapter": chapter.name, "profile": profile}):  # fmt: skip
        return _run_locked(chapter, profile, params, root, results, progress, status_every)


def running_dir(results: Path, profile: str) -> Path:
    """`results/<profile>/.running/`: the locks and status files of the chapters running now."""
    return results / profile / ".running"


def _watch(status_path: Path, n_cells: int, every: float, stop: threading.Event) -> None:
    """Print the chapter's status line every `every` seconds when it changed."""
    last = None
    while not stop.wait(every):
        status = progress.read(status_path)
        if status and status.get("updated") != last:
            last = status.get("updated")
            print(f"   [{time.strftime('%H:%M:%S')}] {progress.describe(status, n_cells)}", flush=True)


def _run_locked(
    chapter: Chapter,
    profile: str,
    params: dict[str, Any],
    root: Path,
    results: Path,
    progress_bar: bool,
    status_every: float | None,
) -> Path:
    """Run `chapter` (its lock held) into a fresh results root, record and publish its results."""
    out = sources.executed_notebook(results, profile, chapter)
    failed = out.with_suffix(".failed.ipynb")
    for folder in (results, results / profile, out.parent):
        remove_stale(folder)
    recover(results, profile)  # finish or roll back a swap a crashed run left
    staging = results / f".{chapter.name}.run-{os.getpid()}"  # a fresh results root for this run
    shutil.rmtree(staging, ignore_errors=True)
    status_path = running_dir(results, profile) / f"{chapter.name}.status.json"
    status_path.unlink(missing_ok=True)
    stop = _start_watch(status_path, root / chapter.notebook, status_every)
    start, usage = time.perf_counter(), provenance.Usage.children()
    state = provenance.code_state(chapter, root)  # the code this run starts from
    try:
        with (
            atomic_path(out) as tmp,
            _environment(NETSHRINK_RESULTS=str(staging), **{progress.ENV: str(status_path), STAGED_ENV: "1"}),
        ):
            execute(root / chapter.notebook, chapter.name, params, tmp, failed,
                    cwd=root, progress_bar=progress_bar)  # fmt: skip
            print_warnings(tmp)
            made = _made(chapter, profile, staging)
            used, wall = provenance.Usage.children() - usage, time.perf_counter() - start
            _record(chapter, profile, params, made, root, (wall, used, state), tmp)
            _publish(chapter, profile, staging, results, tmp, failed)
        failed.unlink(missing_ok=True)
    finally:
        stop.set()
        status_path.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _start_watch(status_path: Path, notebook: Path, every: float | None) -> threading.Event:
    """Start printing the chapter's status every `every` seconds (if set); set the event to stop."""
    cells = nbformat.read(notebook, as_version=4).cells
    n_cells = 1 + sum(c.cell_type == "code" for c in cells)  # with papermill's injected one
    stop = threading.Event()
    if every:
        threading.Thread(target=_watch, args=(status_path, n_cells, every, stop), daemon=True).start()
    return stop


def _made(chapter: Chapter, profile: str, staging: Path) -> Path:
    """The chapter's results folder under `staging` (ChapterFailed if the run wrote none)."""
    made = staging / profile / chapter.name
    if not (made / "parameters.json").is_file():
        raise ChapterFailed(
            f"chapter {chapter.name!r} ran but wrote no {profile} results (under "
            f"{made}); the results of the last successful run are left as they were"
        )
    return made


def _publish(chapter: Chapter, profile: str, staging: Path, results: Path, tmp: Path, failed: Path) -> None:
    """Swap the staged results into `results` (ChapterFailed, the notebook kept, if that fails)."""
    try:
        publish(chapter.name, profile, staging, results)
    except OSError as err:  # e.g. a manifest that cannot be written: nothing was swapped
        keep_failed(tmp, failed)
        raise ChapterFailed(
            f"chapter {chapter.name!r} ran but its results could not be published: "
            f"{err}; the executed notebook is at {failed}"
        ) from err


def _record(
    chapter: Chapter,
    profile: str,
    params: dict[str, Any],
    made: Path,
    root: Path,
    run: tuple[float, Any, Any],
    executed: Path,
) -> None:
    """Write the provenance of a finished run into its results folder `made` and print its
    cost; `run` is (wall seconds, resource usage, the code state it started from)."""
    wall, used, state = run
    ran = json.loads((made / "parameters.json").read_text())
    models_path = made / MODELS_RECORD
    models = json.loads(models_path.read_text()) if models_path.is_file() else []
    models_path.unlink(missing_ok=True)
    prov = provenance.record(chapter, profile, {**params, "computed on": ran.get("computed on")},
                             wall, root, used, state, models)  # fmt: skip
    n_models, n_cached, _ = provenance.cached_models(prov)
    print(f"   {chapter.name}: {wall:.0f} s wall, {used.summary()}, {n_models - n_cached} models "
          f"trained and {n_cached} from the cache", flush=True)  # fmt: skip
    for number, seconds, first in slowest_cells(executed):
        print(f"      {seconds:7.1f} s  cell {number}: {first}", flush=True)
    prov[provenance.FILES] = provenance.file_digests(made)  # the files it publishes
    write_json(made / provenance.RECORD, prov)


def build_book(
    profile: str,
    *,
    root: Path | None = None,
    results: Path | None = None,
    strict: bool = False,
    builder: str = "html",
) -> subprocess.CompletedProcess:
    """Build the book of `profile` into `<root>/_build/<builder>` (`html`, or `singlehtml`: the
    whole book as one page, which `pdf` prints) with `jupyter-book build`; return the finished
    process (its `stdout` holds Sphinx's warnings). `strict` turns warnings into errors. The pages
    come from the runs (`sphinx_ext`): in a `quick` book each chapter from its newest run that
    matches the code (`sources.chapter_profiles`), else from the run of `profile`."""
    root = root or paths.project_root()
    results = results or paths.results_root()
    jb = Path(sys.executable).parent / "jupyter-book"  # the CLI installed beside this interpreter
    cmd = [str(jb), "build", str(root), "--path-output", str(root), "--builder", builder]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    env = {**os.environ, sphinx_ext.PROFILE_ENV: profile, "NETSHRINK_RESULTS": str(results)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def status_report(profile: str, results: Path) -> str:
    """Which chapters of `profile` are running now (their lock is held), by which process, and
    where each is."""
    lines = []
    for lock in sorted(running_dir(results, profile).glob("*.lock")):
        try:
            with hold_lock(lock, lock.stem):
                continue  # nobody holds it: not running
        except Busy as busy:
            status = progress.read(lock.with_suffix(".status.json"))
            lines.append(f"{lock.stem}: {busy.holder_text}\n   {progress.describe(status or {})}")
    return "\n".join(lines) or f"no chapter of profile {profile!r} is running"


def main(argv: list[str] | None = None) -> int:
    """The command line; Ctrl-C ends it in one line (the chapter's own line says where it stopped)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); the results of the last successful runs are left as they were",
              file=sys.stderr)  # fmt: skip
        return 130


def _once(names: str) -> str:
    """`--chapters` with no chapter named twice (a ValueError naming it otherwise)."""
    listed = names.replace(",", " ").split()
    twice = sorted({n for n in listed if listed.count(n) > 1})
    if twice:
        raise ValueError(f"--chapters names {', '.join(twice)} more than once; allowed: each chapter once")
    return names


def _status_merge_or_adopt(args: argparse.Namespace) -> int:
    """`--status`, `--merge` or `--adopt`: an error is one line (exit status 2)."""
    results = paths.results_root()
    try:
        profile = check_profile(args.profile)
        if args.status:
            print(status_report(profile, results))
        elif args.merge:
            merged = merge(args.merge, profile, results, [c.name for c in select(_once(args.chapters))])
            print(f"merged {', '.join(merged)} ({profile}) into {results / profile}")
        else:
            taken = adopt(args.adopt, profile, results)
            print(f"adopted {', '.join(taken)} ({profile}) into {results / profile}")
    except (ValueError, Busy, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", help="smoke, quick (default) or full")
    parser.add_argument("--chapters", default="", help="chapter names, comma separated (default: all)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a chapter parameter, as papermill's -p (VALUE read as YAML)")  # fmt: skip
    parser.add_argument("--no-build", action="store_true", help="run the chapters, skip the HTML build")
    parser.add_argument("--build-only", action="store_true", help="build the HTML book from finished runs")
    parser.add_argument("--all", action="store_true",
                        help="run every chapter (of --chapters), also those whose results the book "
                             "already shows; without it, and without --chapters or -p, only the chapters "
                             "with no results that match the code run")  # fmt: skip
    parser.add_argument("--skip-full", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument("--adopt", type=Path, metavar="RESULTS",
                        help="take finished chapters of the profile from another results folder or "
                             "results.tgz (tools/device-chapter), then stop")  # fmt: skip
    parser.add_argument("--merge", type=Path, nargs="+", metavar="RESULTS",
                        help="merge chapters of the profile run separately (results folders, e.g. CI "
                             "artifacts) into results/, checked first (all of --chapters, once each, "
                             "one commit), then stop")  # fmt: skip
    parser.add_argument("--status", action="store_true",
                        help="say which chapters of the profile are running, and where they are")  # fmt: skip
    parser.add_argument("--status-every", type=float, default=60.0, metavar="SECONDS",
                        help="print a running chapter's stage, model, epoch and time left this often "
                             "(default 60; 0: never)")  # fmt: skip
    return parser


def _main(argv: list[str] | None) -> int:
    """The command line: check every chapter's parameters, run the chapters, build the book."""
    args = _parser().parse_args(argv)
    exit_on_sigterm()
    root = paths.project_root()
    if args.status or args.merge or args.adopt:
        return _status_merge_or_adopt(args)
    try:
        profile = check_profile(args.profile)
        chapters = select(_once(args.chapters))
        overrides = parse_overrides(args.parameter, chapters, root)
        check_profile_override(profile, overrides)
        for chapter in chapters:  # every chapter's values checked before the first one runs
            check_parameters(chapter, {**chapter.parameters(profile), **overrides[chapter.name]}, root)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    if not (args.all or args.build_only or args.chapters.strip() or args.parameter):
        chapters = sources.needing_a_run(chapters, profile, paths.results_root(), root)
    if not args.build_only and not _run_chapters(chapters, profile, overrides, args.status_every or None):
        return 1
    if not args.no_build and not _build(profile, root):
        return 1
    print(f"== finished in {time.perf_counter() - start:.0f} s")
    return 0


def _run_chapters(
    chapters: list[Chapter], profile: str, overrides: dict[str, dict[str, Any]], status_every: float | None
) -> bool:
    """Run each chapter in turn, saying how long it took; False (the error printed) at the first failure."""
    for chapter in chapters:
        t0 = time.perf_counter()
        print(f"== chapter {chapter.name} ({profile})", flush=True)
        try:
            out = run_chapter(chapter, profile, overrides=overrides[chapter.name], status_every=status_every)
        except (ChapterFailed, ValueError, Busy) as err:
            print(f"error: {err}", file=sys.stderr)
            return False
        print(f"   done in {time.perf_counter() - t0:.0f} s -> {out}", flush=True)
    return True


def _build(profile: str, root: Path) -> bool:
    """Build the book, printing the runs it shows and Sphinx's warnings; False (error printed) on failure."""
    print("== building the book", flush=True)
    for line in sources.shown_runs(profile, paths.results_root(), root):
        print(f"   {line}", flush=True)
    try:
        proc = build_book(profile)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return False
    warnings = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "WARNING" in line]
    for line in warnings:
        print(f"   {line}")
    index = paths.project_root() / "_build" / "html" / "index.html"
    print(f"   {len(warnings)} Sphinx warnings; book at {index}")
    return True


if __name__ == "__main__":
    raise SystemExit(main())
