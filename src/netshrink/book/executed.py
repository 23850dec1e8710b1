"""What an executed chapter notebook says about its run: the cell it stopped in, its slowest
cells and the warnings its kernel wrote (papermill keeps them in the notebook only)."""

from __future__ import annotations

from pathlib import Path

import nbformat

__all__ = ["print_warnings", "running_cell", "slowest_cells"]


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
