"""Pages generated from a run for the book: Results at a glance, and the parameters of every
chapter for the rerunning page. Each function returns MyST Markdown; the runner writes it into
the staged book (it never touches the committed sources)."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import papermill as pm

from netshrink.book import escape, provenance, verdicts
from netshrink.book.chapter import Chapter
from netshrink.book.numbers import Numbers
from netshrink.book.report import check_profile

FIGURES_DIR = "figures"  # beside the glance page in the staged book
COMPRESSION_MAP = "compressed-models.png"  # drawn from the manifest by `write_compression_map`


def _number(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _cell(text: Any) -> str:
    return escape.text(text)  # one line, no markup but the book's own (`escape.Markup`)


def _table(name: str, caption: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [
        f"```{{table}} {caption}",
        f":name: {name}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join([*lines, "```", ""])


def _numbers(results: Path, row: dict[str, Any], profile: str, chapter_of: dict[str, str]) -> Numbers:
    """The committed numbers of the run that made comparison `row`."""
    return Numbers(results / row.get("profile", profile) / chapter_of[row["id"]])


def _chapter_link(chapters: Mapping[str, Chapter], name: str) -> str:
    chapter = chapters.get(name)
    return escape.Markup(f"{{doc}}`../chapters/{chapter.stem}`") if chapter else escape.text(name)


def glance_sections(
    manifest: dict[str, Any], results: Path, chapters: Mapping[str, Chapter]
) -> tuple[str, dict[str, Path]]:
    """The generated part of the Results at a glance page for one run's manifest, and the
    figure files it shows ({path relative to the page: file under `results`})."""
    profile = manifest.get("profile", "?")
    files: dict[str, Path] = {}
    out = (
        _drafts_section(manifest, results, chapters, profile)
        + _compression_section(manifest, profile)
        + _figures_section(manifest, results, chapters, profile, files)
    )
    return "\n".join(out), files


def _drafts_section(
    manifest: dict[str, Any], results: Path, chapters: Mapping[str, Chapter], profile: str
) -> list[str]:
    """Every draft number the chapters set beside ours, with its verdict."""
    comparisons = [r for rows in manifest.get("comparisons", {}).values() for r in rows]
    chapter_of = {r["id"]: c for c, rows in manifest.get("comparisons", {}).items() for r in rows}
    out = ["## Our numbers beside the drafts'", ""]
    if not comparisons:
        return out + ["No chapter of this run reports a draft's number.", ""]
    rows = [
        [
            r["item"],
            r["quantity"],
            _number(r["ours"]),
            _number(r["draft"]),
            r["source"],
            escape.code(r.get("profile", profile)),
            _chapter_link(chapters, chapter_of[r["id"]]),
            escape.Markup(verdicts.verdict_text(r, _numbers(results, r, profile, chapter_of))),
        ]
        for r in comparisons
    ]
    caption = (
        "Every draft number the chapters set beside ours (not every number a draft prints), with "
        "the profile that made ours and a verdict: agrees (within the draft's rounding and the "
        "spreads known), differs (why) or not comparable."
    )
    header = ["item", "quantity", "ours", "draft's", "source", "profile", "chapter", "verdict"]
    return out + [_table("glance-drafts", caption, header, rows)]


def _compression_section(manifest: dict[str, Any], profile: str) -> list[str]:
    """Every compressed model beside the model it came from."""
    compression = [r for rows in manifest.get("compression", {}).values() for r in rows]
    out = ["## Every compressed model", ""]
    if not compression:
        return out + ["No chapter of this run has compressed a model yet.", ""]
    rows = [
        [
            r["item"],
            r["data set"],
            r["model"],
            f"{r['parameters']:,} of {r['base parameters']:,}",
            f"{_number(r['MFLOPs'])} of {_number(r['base MFLOPs'])}",
            f"{100 * r['accuracy']:.2f} (was {100 * r['base accuracy']:.2f})",
            f"{r['speedup']:.2f}x",
            escape.code(r.get("profile", profile)),
        ]
        for r in compression
    ]
    caption = (
        "Every compressed model beside the model it came from: parameters, forward MFLOPs per "
        "example, test accuracy (%) and the speedup measured side by side in the same run, with "
        "the profile of that run."
    )
    header = ["item", "data set", "model", "parameters", "MFLOPs", "test accuracy",
              "measured speedup", "profile"]  # fmt: skip
    figure = [
        f"```{{figure}} {FIGURES_DIR}/{COMPRESSION_MAP}",
        ":name: glance-compression-map",
        ":width: 95%",
        "",
        "Every compressed model of the table below: test accuracy lost against the CPU speedup "
        "measured side by side with its original, the marker's area the share of parameters "
        "kept; black crosses: the drafts' own points where a draft gives both numbers (draft 002's "
        "LeNet; draft 003's text at k = 4, which its own log prints at k = 5 and whose parameters "
        "it does not give).",
        "```",
        "",
    ]
    return out + figure + [_table("glance-compression", caption, header, rows)]


def _figures_section(
    manifest: dict[str, Any],
    results: Path,
    chapters: Mapping[str, Chapter],
    profile: str,
    files: dict[str, Path],
) -> list[str]:
    """Every figure of the run, by chapter; fills `files` with the images it shows."""
    out = ["## Every figure", ""]
    # every item with an image, also those that are a table and a figure both (D-F8, V-F1)
    figures = {
        k: v for k, v in manifest.get("items", {}).items() if any(f.endswith(".png") for f in v["files"])
    }
    for chapter_name in dict.fromkeys(v["chapter"] for v in figures.values()):
        chapter = chapters.get(chapter_name)
        out += [f"### {chapter.title if chapter else escape.text(chapter_name)}", ""]
        for _item, entry in sorted(figures.items()):
            if entry["chapter"] != chapter_name:
                continue
            for rel in sorted(f for f in entry["files"] if f.endswith(".png")):
                caption = escape.text(entry.get("file_captions", {}).get(rel, entry["captions"][0]))
                rel = escape.figure_path(rel, f"manifest item {escape.text(_item)}")
                target = f"{FIGURES_DIR}/{rel}"
                files[target] = results / check_profile(entry.get("profile", profile)) / rel
                stem = Path(rel).stem
                out += [
                    f"```{{figure}} {target}",
                    f":name: glance-{stem}",
                    ":width: 90%",
                    "",
                    f"**{stem}** ({_chapter_link(chapters, chapter_name)}). {caption}",
                    "```",
                    "",
                ]
    return out


def _scale(params: Mapping[str, Any]) -> str:
    """The scale of a run in words, from its parameters: data, epochs and width."""
    sizes = {k: v for k, v in params.items() if k.endswith("train_size")}
    subsets = ", ".join(f"{k} {_value(v, ',')}" for k, v in sizes.items() if v is not None)
    parts = ["whole training sets" if all(v is None for v in sizes.values()) else f"subsets: {subsets}"]
    epochs = {k: v for k, v in params.items() if k == "epochs" or k.endswith("_epochs")}
    if epochs:
        parts.append("epochs " + ", ".join(f"{k} {_value(v, '')}" for k, v in epochs.items()))
    if "width" in params:
        parts.append(f"width {_value(params['width'], 'g')}")
    return "; ".join(parts)


def _value(value: Any, spec: str) -> str:
    """A parameter's value from a record: a number formatted by `spec`, anything else as its repr
    cut short (a record is untrusted: a string there must not crash the page)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return repr(value)[:40]


def sources_section(run: Any, chapters: Mapping[str, Chapter]) -> str:
    """Which run each chapter shows (`run`: a `sphinx_ext.BookRun`): profile, device and CPU,
    time, date and scale, from each run's provenance record."""
    rows = []
    for name, used in run.chosen.items():
        prov = provenance.read(run.results, used, name, strict=False)  # a bad one: a build warning
        if prov is None:
            rows.append([_chapter_link(chapters, name), f"`{used}`", "not run yet", "–", "–", "–"])
            continue
        device = provenance.device_text(prov) or "–"
        rows.append([_chapter_link(chapters, name), f"`{used}`", device, f"{prov['wall seconds'] / 60:.1f}",
                     prov["date"][:10], _scale(prov["parameters"])])  # fmt: skip
    table = _table(
        "glance-runs",
        f"The run each chapter of this book shows: its committed full results where they match the code, "
        f"else the {run.profile} run.",
        ["chapter", "profile", "computed on", "minutes", "date", "scale"],
        rows,
    )
    return "\n".join(["## Where the numbers come from", "", table])


def parameter_sections(chapters: Iterable[Chapter], root: Path) -> str:
    """For each chapter: its parameters as declared in its notebook's `parameters` cell (name,
    type, default), with the values of each profile beside, and a papermill command."""
    out = []
    for chapter in chapters:
        declared = pm.inspect_notebook(str(root / chapter.notebook))
        profiles = {p: chapter.parameters(p) for p in chapter.profiles}
        header = ["parameter", "type", "default (quick)", *[p for p in profiles if p != "quick"]]
        rows = []
        for name, p in declared.items():
            default = ast.literal_eval(p["default"])  # the cell holds plain values
            declared_type = p["inferred_type_name"]  # "None" when the cell has no annotation
            kind = declared_type if declared_type not in (None, "None") else type(default).__name__
            others = [f"`{values.get(name)!r}`" for prof, values in profiles.items() if prof != "quick"]
            rows.append([f"`{name}`", kind, f"`{default!r}`", *others])
        out += [
            f"## {chapter.title}",
            "",
            f"`{chapter.notebook}` makes {', '.join(chapter.items)}.",
            "",
            _table(
                f"params-{chapter.name}",
                f"Parameters of {chapter.title}, read from its notebook.",
                header,
                rows,
            ),
            "```bash",
            f".venv/bin/papermill {chapter.notebook} my-run.ipynb -p profile quick -p seed 1",
            "```",
            "",
        ]
    return "\n".join(out)


def write_compression_map(manifest: dict[str, Any], figures: Path) -> Path | None:
    """Draw the glance page's picture of every compressed model (`plots.compression_map`) into
    `figures`, when the run compressed any; its path, or None."""
    from netshrink import published
    from netshrink.book import plots

    fields = ("speedup", "accuracy", "base accuracy", "parameters", "base parameters")
    rows = [
        r
        for rows in manifest.get("compression", {}).values()
        for r in rows
        if all(isinstance(r.get(f), int | float) and math.isfinite(r[f]) and r[f] > 0 for f in fields[::2])
        and all(isinstance(r.get(f), int | float) and math.isfinite(r[f]) for f in fields)
    ]  # fmt: skip  (a record is untrusted: one that cannot be drawn is left out of the picture)
    if not rows:
        return None
    figures.mkdir(parents=True, exist_ok=True)
    fig = plots.compression_map(rows, published.DRAFT_COMPRESSIONS)
    path = figures / COMPRESSION_MAP
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plots.plt.close(fig)
    return path
