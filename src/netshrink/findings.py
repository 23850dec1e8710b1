"""What an experiment returns besides its tables: numbers for the prose, comparisons with the
drafts, and compressed-model records. Plain data, so that experiments run from a script need
none of the book's stack (IPython, myst-nb, seaborn); `book.report` shows and stores them."""

from __future__ import annotations

import math
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


def seed_spread(low: float, high: float, seeds: int, unit: str) -> dict[str, Any]:
    """A comparison row's `spread` and `spread_what` from the 95 % range one more seed's `unit`
    (classifier, network) would take (`stats.one_more_range`); empty with one seed (NaN range)."""
    if seeds < 2 or math.isnan(low) or math.isnan(high):
        return {}
    return {"spread": (high - low) / 2, "spread_what": f"95 % range of one {unit} over our {seeds} seeds"}


def compression_rows(
    item: str,
    table: pd.DataFrame,
    *,
    data_set: str,
    model: str,
    how: str,
    rows: list[str] | None = None,
    base: str | None = None,
    mflops: str = "MFLOPs per image",
    accuracy: str = "test accuracy",
    method: str = "",
) -> list[dict[str, Any]]:
    """Keyword arguments of `Report.compression` for each row of a model table (`rows`, default
    all but `base`) against its `base` row (default the first). The table has `parameters`,
    `speedup`, the MFLOPs per image in column `mflops` (`measure.side_by_side`'s name by default;
    `measure.compare_latency` calls it `MFLOPs`) and the test accuracy, a fraction, in column
    `accuracy`. `model`, `how` and `method` (the glance marker's name, none when empty) are
    formats with `{row}`."""
    for column in ("parameters", "speedup", mflops, accuracy):
        if column not in table:
            raise ValueError(f"table has no column {column!r}; its columns: {', '.join(map(str, table))}")
    acc = accuracy
    base = table.index[0] if base is None else base
    b = table.loc[base]
    out = []
    for name in rows if rows is not None else [r for r in table.index if r != base]:
        r = table.loc[name]
        out.append({"item": item, "model": model.format(row=name), "data_set": data_set,
                    "parameters": r["parameters"], "base_parameters": b["parameters"],
                    "mflops": r[mflops], "base_mflops": b[mflops], "accuracy": r[acc],
                    "base_accuracy": b[acc], "speedup": r["speedup"],
                    "how": how.format(row=name)})  # fmt: skip
        if method:
            out[-1]["method"] = method.format(row=name)
    return out


def peer_line(peer: str, package: str, version: str | None, rows: str, alone: str) -> str:
    """One line on where a peer library's rows come from (`rows`, with its `version`), or, when
    it is not installed (`version` None), that the table has `alone` only."""
    if version is None:
        return f"{peer} is not installed here (`pip install {package}`), so the table has {alone} only."
    return f"The {peer} rows are {rows.format(version=version)}."
