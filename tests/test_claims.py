"""Each committed page's claims hold against its committed numbers (`claims.CLAIMS`)."""

import json
import shutil
from pathlib import Path

import pandas as pd

from netshrink.book import claims, reasons
from netshrink.book.chapters import CHAPTERS
from netshrink.book.numbers import Numbers
from netshrink.io import write_json

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "results" / "full"


def test_every_claim_on_the_committed_pages_holds_against_the_committed_numbers():
    assert claims.failures(FULL, ROOT) == []


def test_every_chapter_with_prose_about_its_numbers_has_claims():
    assert {c.chapter for c in claims.CLAIMS} >= set(CHAPTERS)


def test_a_reversed_finding_or_a_lost_sentence_fails_naming_the_item_and_the_sentence(tmp_path):
    glue = json.loads((FULL / "baselines" / "glue.json").read_text())
    write_json(tmp_path / "baselines" / "glue.json", {**glue, "pool_gain": -1.0})  # a rerun reverses it
    gone = claims.Claim("baselines", "B-T1", "a sentence no page has", lambda n: True)
    found = claims.failures(tmp_path, ROOT, [*[c for c in claims.CLAIMS if c.item == "B-F6"], gone])
    assert found == [
        'B-F6 (baselines): the numbers no longer support: "(B-F6; the report: a gain)"',
        'B-T1 (baselines): the sentence is gone: "a sentence no page has"',
    ]
    missing = claims.failures(tmp_path / "none", ROOT, [c for c in claims.CLAIMS if c.item == "B-F6"])
    assert missing[0].startswith("B-F6 (baselines): its numbers are missing")


def _plain_units(folder: Path) -> None:
    """Chapter 4's committed tables in `folder` as the experiments now write them: accuracies as
    fractions under `test accuracy` (a row of D-T1..D-T4, a column of D-T6). A table already in
    that form is left as it is."""
    for name in ("D-T1", "D-T2", "D-T3", "D-T4"):
        table = pd.read_csv(folder / f"{name}.csv", index_col=0)
        if "test accuracy (%)" in table.index:
            table.loc["test accuracy (%)"] /= 100
            table.rename(index={"test accuracy (%)": "test accuracy"}).to_csv(folder / f"{name}.csv")
    table = pd.read_csv(folder / "D-T6.csv", index_col=0)
    if "test accuracy (%)" in table:
        table["test accuracy (%)"] /= 100
        table.rename(columns={"test accuracy (%)": "test accuracy"}).to_csv(folder / "D-T6.csv")


def test_chapter_4s_claims_and_reasons_read_its_tables_in_plain_units(tmp_path):
    chapter = "tensor_decomposition"
    shutil.copytree(FULL / chapter, tmp_path / chapter)
    _plain_units(tmp_path / chapter)
    mine = [c for c in claims.CLAIMS if c.chapter == chapter]
    assert claims.failures(tmp_path, ROOT, mine) == []
    d_t4 = claims._d_t4(Numbers(tmp_path / chapter))
    assert 50 < d_t4["full data"] <= 100, "in percent, from the table's fraction"
    drops = reasons.dt6_drops(Numbers(tmp_path / chapter))
    table = pd.read_csv(tmp_path / chapter / "D-T6.csv", index_col=0)["test accuracy"]
    assert drops.loc[4, "our accuracy (%)"] == 100 * table["k = 4"]
    assert drops.loc[4, "our drop"] == 100 * table["original"] - 100 * table["k = 4"]
    assert drops.loc[8, "our drop"] == 0
