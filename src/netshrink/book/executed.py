"""What an executed chapter notebook says about its run: the cell it stopped in, its slowest
cells and the warnings its kernel wrote (papermill keeps them in the notebook only); `execute`
runs one, keeping what ran when it fails."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm

from netshrink.io import write_with

__all__ = [
    "KERNEL_ARGUMENTS",
    "ChapterFailed",
    "execute",
    "keep_failed",
    "print_warnings",
    "running_cell",
    "slowest_cells",
]

# the kernel's own log at errors only: its "running over TCP without encryption" warning on a
# local kernel is nothing a user can act on (the chapter's warnings still reach the console)
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


class ChapterFailed(RuntimeError):
    """A chapter notebook raised; the message holds the failing cell and its traceback."""


def running_cell(notebook: Path) -> str:
    """The number of the last code cell papermill started in a partly executed notebook
    (counting its injected parameters cell), or '?'."""
    try:
        cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    except (OSError, ValueError, nbformat.reader.NotJSONError):
        return "?"
    started = [
        n for n, c in enumerate(cells, 1) if c.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    return str(started[-1]) if started else "?"


def slowest_cells(notebook: Path, n: int = 3) -> list[tuple[int, float, str]]:
    """Where an executed notebook's time went: its `n` slowest code cells as (number counting
    papermill's injected cell, seconds from papermill's record, first line of the source)."""
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    timed = [
        (number, float(c.metadata["papermill"]["duration"]), c.source.strip().splitlines()[0][:60])
        for number, c in enumerate(cells, 1)
        if c.get("metadata", {}).get("papermill", {}).get("duration") is not None and c.source.strip()
    ]
    return sorted(timed, key=lambda cell: -cell[1])[:n]


def print_warnings(notebook: Path) -> None:
    """Print the warnings (cache, data) a chapter's kernel wrote to its stderr, which papermill
    keeps in the notebook only."""
    try:
        cells = nbformat.read(notebook, as_version=4).cells
    except (OSError, ValueError, nbformat.reader.NotJSONError):
        return
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.get("name") == "stderr" and "Warning" in out.get("text", ""):
                for line in out["text"].splitlines():
                    if "Warning" in line:
                        print(f"   warning: {line.strip()}", flush=True)


def keep_failed(tmp: Path, failed: Path, *, only_if_written: bool = False) -> None:
    """Copy the executed notebook `tmp` to `failed` (with `only_if_written`: if it has content)."""
    if not only_if_written or (tmp.is_file() and tmp.stat().st_size):
        write_with(failed, lambda path: shutil.copy(tmp, path))


def execute(
    notebook: Path,
    chapter: str,
    params: dict[str, Any],
    tmp: Path,
    failed: Path,
    *,
    cwd: Path,
    progress_bar: bool,
) -> None:
    """Execute `chapter`'s `notebook` into `tmp` with papermill in the folder `cwd`; on failure
    keep what ran as `failed` and raise ChapterFailed."""
    try:
        pm.execute_notebook(str(notebook), str(tmp), parameters=params, cwd=str(cwd),
                            kernel_name="python3", progress_bar=progress_bar, report_mode=False,
                            extra_arguments=KERNEL_ARGUMENTS)  # fmt: skip
    except pm.PapermillExecutionError as err:
        print_warnings(tmp)
        keep_failed(tmp, failed)
        raise ChapterFailed(
            f"chapter {chapter!r} failed in cell {err.exec_count} ({err.ename}: {err.evalue}).\n"
            f"Failing cell:\n{err.source}\n\nTraceback:\n"
            + "\n".join(err.traceback)
            + f"\n\nThe executed notebook is at {failed}; the results of the last "
            f"successful run are left as they were."
        ) from err
    except Exception as err:  # the kernel died (kill -9, out of memory) or papermill failed
        keep_failed(tmp, failed, only_if_written=True)
        raise ChapterFailed(
            f"chapter {chapter!r} stopped in cell {running_cell(tmp)} "
            f"({type(err).__name__}: {' '.join(str(err).split())[:300]}); the executed notebook "
            f"is at {failed}; the results of the last successful run are left as they were"
        ) from err
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM: say where, keep what ran
        keep_failed(tmp, failed, only_if_written=True)
        print(f"error: chapter {chapter!r} was stopped in cell {running_cell(tmp)}; the "
              f"executed notebook is at {failed}; the results of the last successful run are left "
              f"as they were", file=sys.stderr, flush=True)  # fmt: skip
        raise
