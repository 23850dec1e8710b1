"""The notebooks' `parameters` cells and the parameters of a run, in one place.

A chapter's parameters are declared once, in `chapters.py` (values per profile; the rule of
each name in `parameters.RULES`). The notebook's `parameters` cell is generated from the
`quick` profile:

    python -m netshrink.book.cells          # rewrite the cells that differ
    python -m netshrink.book.cells --check  # exit 1 naming the notebooks whose cell differs

`-p NAME VALUE` overrides of the runner are read here as papermill reads them.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm

from netshrink import paths
from netshrink.book import parameters
from netshrink.book.chapter import Chapter
from netshrink.book.chapters import CHAPTERS, select
from netshrink.io import write_with

HEADER = "# Parameters (the `quick` profile); papermill replaces this cell's values."


def parameters_source(chapter: Chapter) -> str:
    """The source of `chapter`'s parameters cell: one `name = value` line per parameter of the
    `quick` profile, in the profile's order."""
    lines = [HEADER] + [f"{name} = {value!r}" for name, value in chapter.parameters("quick").items()]
    return "\n".join(lines)


def _parameters_cell(nb: nbformat.NotebookNode, notebook: Path) -> nbformat.NotebookNode:
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{notebook} has {len(tagged)} cells tagged 'parameters'; allowed: exactly one")
    return tagged[0]


def stale_cells(root: Path, chapters: list[Chapter]) -> list[str]:
    """The notebooks whose parameters cell differs from `parameters_source`."""
    stale = []
    for chapter in chapters:
        path = root / chapter.notebook
        if _parameters_cell(nbformat.read(path, as_version=4), path).source != parameters_source(chapter):
            stale.append(chapter.notebook)
    return stale


def write_cells(root: Path, chapters: list[Chapter]) -> list[str]:
    """Rewrite the parameters cell of each notebook that differs (atomically); the notebooks written."""
    written = []
    for chapter in chapters:
        path = root / chapter.notebook
        nb = nbformat.read(path, as_version=4)
        cell = _parameters_cell(nb, path)
        if cell.source != parameters_source(chapter):
            cell.source = parameters_source(chapter)
            write_with(path, lambda tmp, nb=nb: nbformat.write(nb, str(tmp)))
            written.append(chapter.notebook)
    return written


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The names and default values of the notebook's `parameters` cell."""
    return {name: p["default"] for name, p in pm.inspect_notebook(str(notebook)).items()}


def check_parameters(chapter: Chapter, params: dict[str, Any], root: Path) -> dict[str, Any]:
    """`params` checked under the notebook's names (`parameters.check`): a name the chapter's
    parameters cell does not declare, or a value outside its rule, is a ValueError. Returns the
    converted values."""
    known = notebook_parameters(root / chapter.notebook)
    return parameters.check(chapter.notebook, params, known)


def read_value(name: str, text: str) -> Any:
    """A `-p NAME VALUE` read as papermill's `-p` reads it (`True`, `False`, `None`, an int, a
    float: `1e-3` is 0.001), else as YAML, as papermill's `-y` does (`[1, 2]`, `{a: 1}`, `vbmf`)."""
    scalars = {"True": True, "False": False, "None": None}
    if text in scalars:
        return scalars[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return parameters.read_yaml(name, text)  # the raw text checked first (size, no aliases)


def check_profile_override(profile: str, overrides: dict[str, dict[str, Any]]) -> None:
    """`-p profile X` must agree with `--profile`: the profile names the results folder."""
    for chapter, values in overrides.items():
        if "profile" in values and values["profile"] != profile:
            raise ValueError(
                f"-p profile {values['profile']!r} disagrees with --profile {profile!r} (chapter "
                f"{chapter!r}); choose the profile with --profile alone"
            )


def parse_overrides(pairs: list[list[str]], chapters: list[Chapter], root: Path) -> dict[str, dict[str, Any]]:
    """`-p NAME VALUE` pairs -> {chapter name: overrides}. A VALUE is read as YAML, as papermill's
    `-y` does (`3`, `0.5`, `null`, `[1, 2]`, `vbmf`); each NAME goes to every selected chapter
    whose parameters cell declares it, and one that none declares is an error."""
    known = {c.name: notebook_parameters(root / c.notebook) for c in chapters}
    out: dict[str, dict[str, Any]] = {c.name: {} for c in chapters}
    for name, text in pairs:
        value = read_value(name, text)
        takers = [c.name for c in chapters if name in known[c.name]]
        if not takers:
            every = sorted(set().union(*known.values()))
            hint = difflib.get_close_matches(name, every, n=1)
            raise ValueError(
                f"-p {name}: no selected chapter has a parameter {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; their parameters: {', '.join(every)}"
            )
        for chapter in takers:
            out[chapter][name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report the notebooks whose cell differs")
    parser.add_argument("--chapters", default="", help=f"chapters (default: all): {', '.join(CHAPTERS)}")
    args = parser.parse_args(argv)
    root, chosen = paths.project_root(), select(args.chapters)
    if args.check:
        stale = stale_cells(root, chosen)
        for notebook in stale:
            print(f"{notebook}: its parameters cell differs from chapters.py; rewrite it with "
                  "python -m netshrink.book.cells")  # fmt: skip
        return 1 if stale else 0
    for notebook in write_cells(root, chosen):
        print(f"wrote the parameters cell of {notebook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
