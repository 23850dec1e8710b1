"""The browser check of a built book (`book.sitecheck`) on a tiny site: it finds a broken link, an
image that does not load and a redirect to nowhere, and passes a clean site."""

import shutil

import pytest

from netshrink.book import sitecheck

PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def _site(root, *, broken: bool):
    (root / "_static").mkdir(parents=True)
    (root / "_static" / "x.html").write_text("<html></html>")
    (root / "a.png").write_bytes(PIXEL)
    link, image = ("missing.html", "gone.png") if broken else ("page.html", "a.png")
    target = "nowhere.html" if broken else "page.html"
    (root / "index.html").write_text(f'<meta http-equiv="refresh" content="0; url={target}">')
    head = '<head><link rel="icon" href="data:,"></head>'  # no favicon request
    body = f'<body><a href="{link}">x</a><img src="{image}"></body>'
    (root / "page.html").write_text(f"<html>{head}{body}</html>")
    return root


def test_the_pages_of_a_book_leave_out_sphinx_folders(tmp_path):
    site = _site(tmp_path / "html", broken=False)
    assert sitecheck.html_pages(site) == ["index.html", "page.html"]


def test_a_folder_without_a_book_is_refused(tmp_path):
    pytest.importorskip("playwright")
    with pytest.raises(FileNotFoundError, match=r"holds no built book \(no index.html\); build it with"):
        sitecheck.check_site(tmp_path)


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="no Chromium on this machine")  # fmt: skip
def test_problems_are_found_and_a_clean_site_passes(tmp_path):
    pytest.importorskip("playwright")
    clean = sitecheck.check_site(_site(tmp_path / "clean", broken=False))
    assert clean.problems == [] and clean.images["page.html"]
    broken = sitecheck.check_site(_site(tmp_path / "broken", broken=True))
    text = "\n".join(broken.problems)
    assert "index.html: redirects to a missing page: nowhere.html" in text
    assert "page.html: broken link: missing.html" in text
    assert "image does not load" in text and "gone.png" in text
