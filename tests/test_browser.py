"""The built book opened page by page in headless Chromium (Debian's `chromium`, Playwright)."""

import shutil

import pytest

from netshrink import paths
from netshrink.book import report, sitecheck

pytestmark = [pytest.mark.chapter, pytest.mark.book]


def test_every_page_of_the_book_loads_cleanly_in_chromium(smoke_run, smoke_book):
    results, _ = smoke_run
    html, _ = smoke_book
    shots = paths.results_root() / "smoke" / "screenshots"
    seen = sitecheck.check_site(html, report.read_manifest("smoke", results), shots)
    assert not seen.problems, "\n".join(seen.problems)
    assert {"book/glance.html", "book/rerun.html", "chapters/03_node_importance.html"} <= set(seen.pages)
    assert {p.name for p in seen.screenshots} >= {
        "01_baselines.png",
        "02_random_pruning.png",
        "03_node_importance.png",
    }
    assert all(p.stat().st_size > 10_000 for p in seen.screenshots), "a screenshot of a rendered page"


def test_a_figure_deleted_before_the_build_fails_the_browser_test(smoke_run, book_builder, tmp_path):
    results, _ = smoke_run
    broken = tmp_path / "results"
    shutil.copytree(results, broken)
    victim = broken / "smoke" / "random_pruning" / "R-F1.png"
    victim.unlink()
    html, _ = book_builder(tmp_path / "project", broken)
    seen = sitecheck.check_site(html, report.read_manifest("smoke", broken))
    assert any("R-F1" in p for p in seen.problems), seen.problems


def test_a_broken_link_and_a_missing_image_are_reported(tmp_path):
    (tmp_path / "index.html").write_text(
        '<html><head><link rel="icon" href="data:,"></head><body>'
        '<a href="missing.html">x</a><a href="page.html#top">y</a><img src="nope.png"></body></html>'
    )
    (tmp_path / "page.html").write_text(
        '<html><head><link rel="icon" href="data:,"></head><body>ok</body></html>'
    )
    seen = sitecheck.check_site(tmp_path)
    assert any("broken link: missing.html" in p for p in seen.problems)
    assert any("image does not load" in p and "nope.png" in p for p in seen.problems)
    assert not any(p.startswith("page.html") for p in seen.problems)
