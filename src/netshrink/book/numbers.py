"""One chapter's committed numbers, read back from its results folder: the glued values
(`glue.json`), its tables (`<name>.csv`) and its parameters (`parameters.json`). The verdicts
and the claims of the pages are computed from these at book-build time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Numbers"]


@dataclass(frozen=True)
class Numbers:
    """The numbers of one chapter's run: `folder` is `results/<profile>/<chapter>`."""

    folder: Path

    @cached_property
    def glued(self) -> dict[str, Any]:
        path = self.folder / "glue.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @cached_property
    def params(self) -> dict[str, Any]:
        path = self.folder / "parameters.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def glue(self, name: str) -> Any:
        """A glued value; KeyError naming it and the folder when the run has none."""
        if name not in self.glued:
            raise KeyError(f"{self.folder / 'glue.json'} has no value {name!r}")
        return self.glued[name]

    def table(self, name: str) -> pd.DataFrame:
        """`<name>.csv`, its first column the index."""
        path = self.folder / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not in the run")
        return pd.read_csv(path, index_col=0)
