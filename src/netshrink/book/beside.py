"""What a chapter page shows beside the drafts, generated from the run it shows: the settings
table (`settings.settings_section`) and every comparison with its verdict
(`verdicts.verdicts_section`), as one MyST section that `sphinx_ext.chapter_page` inserts after
the provenance note."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netshrink.book import provenance, settings, verdicts
from netshrink.book.chapters import CHAPTERS
from netshrink.book.numbers import Numbers

__all__ = ["page_section", "run_parameters"]


def run_parameters(results: Path, profile: str, chapter: str) -> dict[str, Any]:
    """The parameters of the chapter's run: its provenance record's, else its `parameters.json`,
    else the profile's declared values."""
    prov = provenance.read(results, profile, chapter)
    if prov is not None:
        return prov["parameters"]
    return Numbers(results / profile / chapter).params or CHAPTERS[chapter].parameters(profile)


def page_section(results: Path, profile: str, chapter: str, manifest: dict[str, Any]) -> str:
    """MyST for the chapter page of the run `results/<profile>/<chapter>`: its settings beside the
    drafts' and its comparisons (from the book's `manifest`) with their verdicts."""
    rows = manifest.get("comparisons", {}).get(chapter, [])
    numbers = Numbers(results / profile / chapter)
    return "\n".join([
        settings.settings_section(chapter, run_parameters(results, profile, chapter)),
        verdicts.verdicts_section(chapter, rows, numbers),
    ])  # fmt: skip
