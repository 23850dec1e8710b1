"""Each committed page's claims hold against its committed numbers (`claims.CLAIMS`)."""

import json
from pathlib import Path

from netshrink.book import claims
from netshrink.book.chapters import CHAPTERS
from netshrink.io import write_json

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "results" / "full"


def test_every_claim_on_the_committed_pages_holds_against_the_committed_numbers():
    assert claims.failures(FULL, ROOT) == []


def test_every_chapter_with_prose_about_its_numbers_has_claims():
    assert {c.chapter for c in claims.CLAIMS} >= set(CHAPTERS) - {"random_pruning"}


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
