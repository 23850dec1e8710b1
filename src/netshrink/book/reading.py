"""A chapter page's reading flow: the question, what was found, then the sections.

The blocks here are MyST Markdown that `sphinx_ext.chapter_page` puts after the chapter's title
and question: a box with what the run found (the chapter's own "What we found" paragraph, glued
from the run, else the compressed models its run recorded), and the folded parameters cell with
a one-line command that reruns the chapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import nbformat

from netshrink.book.chapter import Chapter

__all__ = ["FOUND_HEADING", "PARAMETERS_TAG", "drop_paths", "fold_parameters", "found_box", "rerun_command"]

FOUND_HEADING = "## What we found"
PARAMETERS_TAG = "injected-parameters"  # papermill's cell with the values the run used
MAX_ROWS = 4


def _found_paragraph(cells: Sequence[Any]) -> str | None:
    """The first paragraph (or list) under the page's 'What we found' heading, or None."""
    for cell in cells:
        if cell.cell_type != "markdown" or FOUND_HEADING not in cell.source:
            continue
        after = cell.source.split(FOUND_HEADING, 1)[1].strip()
        block = after.split("\n\n", 1)[0].strip()
        return block or None
    return None


def _compression_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for r in rows[:MAX_ROWS]:
        ratio = r["base parameters"] / r["parameters"] if r["parameters"] else float("nan")
        lines.append(
            f"- **{r['model']}** ({r['data set']}): {r['parameters']:,} of {r['base parameters']:,} "
            f"parameters ({ratio:.1f} times fewer), test accuracy {100 * r['accuracy']:.2f} % "
            f"(was {100 * r['base accuracy']:.2f} %), measured {r['speedup']:.2f} times as fast."
        )
    if len(rows) > MAX_ROWS:
        lines.append(f"- and {len(rows) - MAX_ROWS} more compressed models in the tables below.")
    return lines


def found_box(cells: Sequence[Any], compressions: Sequence[Mapping[str, Any]]) -> str | None:
    """A 'What was found' box for the top of a chapter page: the chapter's 'What we found'
    paragraph (its numbers glued from the run), else the compressed models of the run; None
    when the page has neither."""
    paragraph = _found_paragraph(cells)
    if paragraph is not None:
        body = paragraph + "\n\nMore under *What we found* at the end of this page."
    elif compressions:
        body = "The compressed models of this run, beside the models they came from:\n\n" + "\n".join(
            _compression_lines(compressions)
        )
    else:
        return None
    return f"```{{admonition}} What was found\n:class: tip\n\n{body}\n```"


def rerun_command(chapter: Chapter, profile: str) -> str:
    """The one line that reruns `chapter` in `profile` and builds the book with it."""
    return f".venv/bin/python -m netshrink.book.runner --profile {profile} --chapters {chapter.name}"


def fold_parameters(nb: Any, chapter: Chapter, profile: str) -> None:
    """Fold papermill's parameters cell (tag `hide-cell`) and put the rerun command before it,
    in place. A notebook without that cell is left as it is."""
    for index, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and PARAMETERS_TAG in tags:
            cell.metadata["tags"] = [*tags, "hide-cell"]
            text = (
                f"The values this run used are folded below. Rerun this chapter with "
                f"`{rerun_command(chapter, profile)}` (add `-p NAME VALUE` to change one; "
                f"{{doc}}`../book/rerun` lists them)."
            )
            nb.cells.insert(index, nbformat.v4.new_markdown_cell(text))
            return


def drop_paths(nb: Any) -> int:
    """Remove, in place, the outputs that only echo a file path a cell's last line returned
    (`PosixPath('/.../V-F1.png')` after `report.figure`): plumbing, not results. Returns how many."""
    dropped = 0
    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        kept = [o for o in outputs if not _echoes_a_path(o)]
        dropped += len(outputs) - len(kept)
        if cell.cell_type == "code":
            cell["outputs"] = kept
    return dropped


def _echoes_a_path(out: Any) -> bool:
    data = out.get("data", {})
    text = str(data.get("text/plain", ""))
    return (
        out.get("output_type") == "execute_result"
        and set(data) == {"text/plain"}
        and text.startswith(("PosixPath(", "WindowsPath("))
    )
