"""What an experiment returns besides its tables: numbers for the prose, comparisons with the
drafts, and compressed-model records. Plain data, so that experiments run from a script need
none of the book's stack (IPython, myst-nb, seaborn); `book.report` shows and stores them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Findings:
    """What an experiment hands the report besides its tables and figures: numbers for the prose
    (`glue`, name -> value), numbers set beside a draft's (`comparisons`, keyword arguments of
    `Report.compare`) and compressed models (`compressions`, of `Report.compression`)."""

    glue: dict[str, Any] = field(default_factory=dict)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    compressions: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: Findings) -> Findings:
        return Findings(
            {**self.glue, **other.glue},
            self.comparisons + other.comparisons,
            self.compressions + other.compressions,
        )


def compression_rows(
    item: str,
    table: pd.DataFrame,
    *,
    data_set: str,
    model: str,
    how: str,
    rows: list[str] | None = None,
    base: str | None = None,
) -> list[dict[str, Any]]:
    """Keyword arguments of `Report.compression` for each row of a model table (`rows`, default
    all but `base`) against its `base` row (default the first). The table has `parameters`,
    `speedup`, MFLOPs as `MFLOPs per image` or `MFLOPs`, and accuracy as `test accuracy (%)` or
    `test acc` (a fraction). `model` and `how` are formats with `{row}`."""
    mflops = "MFLOPs per image" if "MFLOPs per image" in table else "MFLOPs"
    scale, acc = (100, "test accuracy (%)") if "test accuracy (%)" in table else (1, "test acc")
    base = table.index[0] if base is None else base
    b = table.loc[base]
    out = []
    for name in rows if rows is not None else [r for r in table.index if r != base]:
        r = table.loc[name]
        out.append({"item": item, "model": model.format(row=name), "data_set": data_set,
                    "parameters": r["parameters"], "base_parameters": b["parameters"],
                    "mflops": r[mflops], "base_mflops": b[mflops], "accuracy": r[acc] / scale,
                    "base_accuracy": b[acc] / scale, "speedup": r["speedup"],
                    "how": how.format(row=name)})  # fmt: skip
    return out
