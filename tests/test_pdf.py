"""The book as its readers meet it, built from the committed `full` results: pages whose tables
print numbers for reading, folded setup code, and the whole book as one PDF holding every figure
and table of the manifest with the HTML's numbers (rendered with poppler's `pdftoppm`)."""

import re
import shutil
import subprocess

import pytest

from netshrink.book import pdf, runner, sitecheck, sources

needs_tools = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("pdftoppm")),
    reason="needs Debian's chromium and poppler-utils",
)


@pytest.fixture(scope="module")
def full_book(project_root, tmp_path_factory):
    """The quick book of the committed results (every chapter from `results/full`), and its PDF:
    (html folder, PDF, manifest)."""
    root = tmp_path_factory.mktemp("pdfbook") / "project"
    root.mkdir()
    for name in ("_config.yml", "_toc.yml", "book", "chapters"):
        src = project_root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    results = project_root / "results"
    runner.build_book("quick", root=root, results=results)
    made = pdf.build_pdf("quick", root=root, results=results)
    return root / "_build" / "html", made, sources.book_manifest("quick", results, project_root)


def _flat(text):
    """Text without white space and hyphens (pdftotext joins a word hyphenated at a line's end)."""
    return re.sub(r"[\s-]+", "", text)


def _numbers(text):
    return re.findall(r"-?\d(?:[\d,]*\d)?(?:\.\d+)?(?:e[+-]\d+)?", text)


@pytest.mark.book
@needs_tools
def test_the_pages_print_numbers_for_reading_and_fold_their_setup_code(full_book):
    html, _, _ = full_book
    raw = {p: sitecheck.raw_cells(p.read_text()) for p in html.rglob("*.html") if "_static" not in p.parts}
    assert not {p: c for p, c in raw.items() if c}, "table cells with raw numbers"
    for page in (html / "chapters").glob("*.html"):
        text = page.read_text()
        assert "What was found" in text and "tag_hide-cell" in text and "tag_hide-input" in text, page.name
        assert "--chapters" in text, "the rerun command beside the parameters"
    assert 'href="../netshrink.pdf"' in (html / "book" / "intro.html").read_text()


@pytest.mark.book
@needs_tools
def test_the_pdf_holds_every_figure_and_table_with_the_htmls_numbers(full_book, tmp_path):
    html, made, manifest = full_book
    assert (html / pdf.PDF_NAME).read_bytes() == made.read_bytes(), "published with the site"
    pages = pdf.page_count(made)
    subprocess.run(["pdftoppm", "-r", "12", "-png", str(made), str(tmp_path / "p")], check=True)
    rendered = sorted(tmp_path.glob("p-*.png"))
    assert len(rendered) == pages > 20
    text = subprocess.run(["pdftotext", str(made), "-"], capture_output=True, text=True, check=True).stdout
    flat = _flat(text)
    tokens = set(_numbers(text))
    for item, entry in manifest["items"].items():
        assert _flat(item) in flat, f"{item} is not in the PDF"
        for file, caption in entry.get("file_captions", {}).items():
            if file.endswith(".csv"):
                assert _flat(caption.replace("`", ""))[:80] in flat, f"table {file}"
    images = subprocess.run(["pdfimages", "-list", str(made)], capture_output=True, text=True, check=True)
    figures = [f for e in manifest["items"].values() for f in e["files"] if f.endswith(".png")]
    assert len(images.stdout.splitlines()) - 2 >= len(figures)
    missing = set()
    for page in sorted((html / "chapters").glob("*.html")):
        for table in re.findall(r'<table class="netshrink-table__table.*?</table>', page.read_text(), re.S):
            missing |= {
                n for cell in re.findall(r"<td[^>]*>(.*?)</td>", table) for n in _numbers(cell)
            } - tokens
    assert not missing, f"numbers of the HTML tables not in the PDF: {sorted(missing)[:20]}"


@pytest.mark.book
@needs_tools
def test_the_browser_sees_folded_cells_and_the_pdf_link(full_book):
    html, _, manifest = full_book
    seen = sitecheck.check_site(html, manifest, pdf=True)
    assert not seen.problems, "\n".join(seen.problems)


def test_make_pdf_without_chromium_stops_with_one_line_naming_the_package(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NETSHRINK_CHROMIUM", raising=False)
    assert pdf.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install chromium" in err
