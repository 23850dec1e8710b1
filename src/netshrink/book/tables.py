"""Tables for people: a data frame's numbers as a reader wants them on a page.

The CSV under `results/` keeps every digit; what a page shows goes through `readable`:
counts with thousands separators, other numbers with four significant digits at the column's
largest value and the fewest decimals that say the same (0.1 stays `0.1`, 89.35 `89.35`),
missing values as a dash, the index as the first column(s) under its name (no row of index
names of its own), repeated labels of a grouped index written once. A column of fractions named
in `PERCENT` (results keep accuracies as fractions) is shown in percent, its label marked (%).
`to_html` wraps the result in a frame that scrolls sideways with its first column kept
(`book/_static/netshrink.css`).
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "OUTPUT_KEY",
    "PERCENT",
    "SIGNIFICANT",
    "format_column",
    "from_html",
    "html_caption",
    "item_of",
    "read_csv",
    "readable",
    "reformat_outputs",
    "to_html",
]

SIGNIFICANT = 4  # digits at a column's largest magnitude
MAX_DECIMALS = 6
DASH = "–"
FRAME_CLASS = "netshrink-table"
ITEM = re.compile(r"^[A-Z]-[A-Z]+\d+")
NUMBER = re.compile(r"-?[\d,]*\.?\d+(?:e[+-]?\d+)?")
WIDE = 9  # columns beyond which a table prints smaller in the PDF
PERCENT = frozenset(
    {
        "test accuracy",
        "accuracy before fine-tuning",
        "accuracy lost",
        "accuracy range low",
        "accuracy range high",
    }
)
"""Column labels whose values are fractions (0.9 for 90 %) and a page shows in percent."""
OUTPUT_KEY = "netshrink"  # a displayed table's metadata: {"netshrink": {"table": "<chapter>/<file>.csv"}}


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _decimals(values: Sequence[float]) -> int:
    """The decimals a float column needs: SIGNIFICANT digits at its largest magnitude, fewer when
    they say the same for every value (trailing zeros dropped column-wide)."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not finite:
        return 0
    most = min(MAX_DECIMALS, max(0, SIGNIFICANT - 1 - math.floor(math.log10(max(finite)))))
    for d in range(most + 1):
        if all(round(v, d) == round(v, most) for v in values if math.isfinite(v)):
            return d
    return most


def format_column(values: Sequence[object]) -> list[str]:
    """Each value of one column as text: texts as they are, missing values as a dash, counts
    (whole numbers, in a column mostly of them) with thousands separators, other numbers with
    the column's decimals (`_decimals`), a column of tiny numbers and a nonzero value too small
    for the column's decimals with two or three significant digits. (n,) values in, (n,) out."""
    finite = [float(v) for v in values if _numeric(v) and math.isfinite(float(v))]
    counts = 2 * sum(v.is_integer() for v in finite) > len(finite)  # e.g. a table whose rows are quantities
    measured = [v for v in finite if not (counts and v.is_integer())]
    tiny = bool(measured) and max(abs(v) for v in measured) < 1e-3
    fmt = "{:.3g}" if tiny else f"{{:,.{_decimals(measured)}f}}"
    return [_format_value(v, fmt, counts) for v in values]


def _format_value(value: object, fmt: str, counts: bool) -> str:
    if _is_missing(value):
        return DASH
    if not _numeric(value):
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0 or (counts and v.is_integer()):
        return f"{v:,.0f}"  # a zero is a zero, whatever the column's decimals
    text = fmt.format(v)
    if v != 0 and float(text.replace(",", "")) == 0:
        return f"{v:.2g}"  # too small for the column's decimals: not a zero
    whole, _, fraction = text.partition(".")
    if len(fraction) >= 4 and not fraction.strip("0"):
        return whole  # 0.99999999 at four decimals: 1, not a machine's 1.0000
    return text


def _label(name: object) -> str:
    if isinstance(name, tuple):
        name = " · ".join(
            str(p) for p in name if not _is_missing(p) and str(p) and not str(p).startswith("Unnamed")
        )
    return "" if _is_missing(name) or str(name).startswith("Unnamed:") else str(name)


def _percent_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (a copy) with each row whose label is in `PERCENT` (a table whose rows are
    quantities) in percent, its label marked (%); other rows and texts untouched."""
    if frame.index.nlevels != 1 or not any(_label(r) in PERCENT for r in frame.index):
        return frame
    frame = frame.astype(object)
    for i, row in enumerate(frame.index):
        if _label(row) in PERCENT:
            frame.iloc[i] = [100 * float(v) if _numeric(v) else v for v in frame.iloc[i]]
    labels = [f"{_label(r)} (%)" if _label(r) in PERCENT else r for r in frame.index]
    frame.index = pd.Index(labels, name=frame.index.name)
    return frame


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """`df` as a frame of strings for a page: the index (unless a plain 0..n-1) as leading columns
    under its names, column labels flattened to text, every column formatted by `format_column`,
    and a label repeated on consecutive rows of a leading column written once. Shape (n, k + levels)."""
    frame = df.copy()
    plain = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    n_labels = 0 if plain else frame.index.nlevels
    if not plain:
        frame = _percent_rows(frame)
        names = [n if n is not None else f"Unnamed: {i}" for i, n in enumerate(frame.index.names)]
        frame.index = frame.index.set_names(names)
        frame = frame.reset_index()
    labels = [_label(c) for c in frame.columns]
    for i, label in enumerate(labels):
        if label in PERCENT:  # shown in percent: the one place a fraction becomes a percent
            frame.isetitem(i, 100 * pd.to_numeric(frame.iloc[:, i], errors="coerce"))
            labels[i] = f"{label} (%)"
    frame.columns = labels
    out = pd.DataFrame({i: format_column(list(frame.iloc[:, i])) for i in range(frame.shape[1])})
    out.columns = list(frame.columns)
    for i in range(max(n_labels - 1, 0)):  # the outer levels of a grouped index, written once
        column = out.iloc[:, i].tolist()
        out.iloc[:, i] = [v if r == 0 or v != column[r - 1] else "" for r, v in enumerate(column)]
    return out


def read_csv(path: Path) -> pd.DataFrame:
    """A table `Report.table` wrote (`df.to_csv(index=True)`): its first column is the index when
    it has a name or is not the plain 0..n-1 a default index writes."""
    df = pd.read_csv(path)
    first = df.columns[0] if len(df.columns) else None
    if first is not None and str(first).startswith("Unnamed:"):
        values = df[first]
        if values.tolist() == list(range(len(df))):
            return df.drop(columns=first)
        return df.set_index(first).rename_axis(None)
    return df.set_index(first) if first is not None else df


def _inline(text: str) -> str:
    """A caption's text as HTML, its `code` spans and **bold** kept."""
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cell(text: str) -> str:
    """A body cell; text that is not a number gets class `t` (left-aligned, wraps in print)."""
    numeric = text == DASH or NUMBER.fullmatch(text) is not None
    return f"<td>{html.escape(text)}</td>" if numeric else f'<td class="t">{html.escape(text)}</td>'


def item_of(file: str) -> str | None:
    """The item ID a results file belongs to ('R-T3' of 'random_pruning/R-T3-accuracy.csv')."""
    found = ITEM.match(Path(file).name)
    return found.group(0) if found else None


def to_html(df: pd.DataFrame, caption: str | None = None, item: str | None = None) -> str:
    """`readable(df)` as an HTML table in a frame that scrolls sideways, first column kept
    (`static/netshrink.css`), under its caption."""
    table = readable(df)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.itertuples(index=False))
    wide = f" {FRAME_CLASS}__table--wide" if table.shape[1] > WIDE else ""  # smaller print in the PDF
    label = f"<strong>{html.escape(item)}.</strong> " if item else ""
    cap = f'<p class="{FRAME_CLASS}__caption">{label}{_inline(caption or "")}</p>' if caption or item else ""
    return (
        f'<div class="{FRAME_CLASS}">{cap}<div class="{FRAME_CLASS}__scroll">'
        f'<table class="{FRAME_CLASS}__table{wide}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div></div>"
    )


class _Rows(HTMLParser):
    """The rows of the first HTML table in a text: [[(tag, text, rowspan), ...], ...] per part."""

    def __init__(self) -> None:
        super().__init__()
        self.head: list[list[str]] = []
        self.body: list[list[str]] = []
        self.caption: str | None = None
        self._part, self._cell, self._in_caption, self._spans = "body", None, False, {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("thead", "tbody"):
            self._part = "head" if tag == "thead" else "body"
        elif tag == "tr":
            (self.head if self._part == "head" else self.body).append([])
        elif tag in ("td", "th"):
            self._cell = []
            self._rowspan = int(dict(attrs).get("rowspan") or 1)
        elif tag == "caption":
            self._in_caption, self.caption = True, ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            rows = self.head if self._part == "head" else self.body
            column = len(rows[-1])
            while (self._part, column) in self._spans and self._spans[self._part, column][1] > 0:
                text, left = self._spans[self._part, column]  # a cell spanning rows from above
                rows[-1].append("")
                self._spans[self._part, column] = (text, left - 1)
                column += 1
            rows[-1].append(" ".join("".join(self._cell).split()))
            if self._rowspan > 1:
                self._spans[self._part, column] = (rows[-1][-1], self._rowspan - 1)
            self._cell = None
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_caption:
            self.caption = (self.caption or "") + data


def _parse_number(text: str) -> object:
    try:
        return float(text.replace(",", "")) if text.strip() else text
    except ValueError:
        return text


def html_caption(text: str) -> str | None:
    """The caption of the first table in an HTML text, its whitespace normalised, or None."""
    parser = _Rows()
    parser.feed(text)
    return " ".join(parser.caption.split()) if parser.caption is not None else None


def from_html(text: str) -> pd.DataFrame:
    """A table shown as pandas HTML (a frame's own display) read back as a frame: header rows
    joined into one label per column (index names included), cells that read as numbers as floats."""
    parser = _Rows()
    parser.feed(text)
    width = max((len(r) for r in parser.head + parser.body), default=0)
    head = [r + [""] * (width - len(r)) for r in parser.head]
    labels = [" ".join(t for t in col if t) for col in zip(*head, strict=True)]
    rows = [[_parse_number(t) for t in r + [""] * (width - len(r))] for r in parser.body]
    return pd.DataFrame(rows, columns=labels or None)


def _rendered(out: Any, run_dir: Path, captions: Mapping[str, str], taken: Counter) -> str | None:
    """The HTML of a table output rendered from its CSV: the file its metadata names, else the
    file of the chapter whose caption it shows (a run made before tables carried their file)."""
    rel = out.get("metadata", {}).get(OUTPUT_KEY, {}).get("table")
    caption = html_caption(out["data"]["text/html"])
    if rel is None and caption is not None:
        same = sorted(f for f, c in captions.items() if " ".join(c.split()) == caption)
        if same:
            rel = same[min(taken[caption], len(same) - 1)]  # equal captions: in the files' order
            taken[caption] += 1
    if rel is None or not (run_dir / rel).is_file():
        return None
    return to_html(read_csv(run_dir / rel), captions.get(rel, caption), item_of(rel))


def reformat_outputs(nb: Any, run_dir: Path, captions: Mapping[str, str]) -> int:
    """Show every table of an executed notebook for reading, in place: a table `Report.table`
    wrote rendered again from its CSV under `run_dir` (`results/<profile>`) with `captions`
    ({file relative to `run_dir`: caption}, from the manifest); the frame a cell's last line
    returned after such a table dropped (the same table again); any other HTML table parsed and
    formatted. Returns the number of tables shown."""
    taken: Counter = Counter()
    shown = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept, had_table = [], False
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/html")
            if not text or "<table" not in text:
                kept.append(out)
                continue
            rendered = _rendered(out, run_dir, captions, taken)
            if rendered is None and out.get("output_type") == "execute_result" and had_table:
                continue
            out["data"] = {"text/html": rendered if rendered is not None else to_html(from_html(text))}
            had_table, shown = True, shown + 1
            kept.append(out)
        cell["outputs"] = kept
    return shown
