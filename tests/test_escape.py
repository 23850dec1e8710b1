"""Issue 41, item 6: every string the book shows from a manifest, a CSV or a provenance record
is escaped for HTML and MyST; a figure path outside the results is refused. The pages are
rendered by MyST's own Markdown parser to check that nothing hostile survives as markup."""

import copy
from pathlib import Path

import pytest
from markdown_it.renderer import RendererHTML
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser
from test_pages import manifest

from netshrink.book import chapters, pages, provenance

MD = create_md_parser(
    MdParserConfig(enable_extensions={"dollarmath", "colon_fence", "deflist"}), RendererHTML
)
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "x\n```{raw} html\n<script>alert(2)</script>\n```",
    "x\n:::{raw} html\n<b>bold</b>\n:::",
    "{raw}`<script>alert(3)</script>`",
    "[click](javascript:alert(4))",
    "![pic](/etc/passwd)",
    "$\\href{javascript:alert(5)}{x}$",
    "a | b ` c",
    "&lt;script&gt;",
]
BAD_FIGURES = ["/etc/secret.png", "random_pruning/../../secret.png", "random_pruning/x\n```{raw} html\n.png",
               "random_pruning/a b.png", "C:\\x.png"]  # fmt: skip


def _markup_in(rendered: str) -> list[str]:
    """Tags and roles in rendered HTML that no escaped string can make."""
    bad = ["<script", "<img", "<b>", 'href="javascript', "{raw}", "math"]
    return [b for b in bad if b in rendered.replace("&lt;", "").replace("\\{raw\\}", "")]


@pytest.mark.parametrize("value", HOSTILE)
def test_escaped_text_shows_as_written_and_makes_no_markup(value):
    from netshrink.book import escape

    out = escape.text(value)
    assert "\n" not in out
    rendered = MD.render(out)
    assert rendered.count("<p>") == 1 and "<pre" not in rendered
    assert not [b for b in ("<script", "<img", "<b>", 'href="', "math", "role") if b in rendered], rendered


def test_the_glance_page_escapes_manifest_strings_and_captions():
    """Raw `<script>` in a comparison's quantity and a caption were emitted into the glance page."""
    m = copy.deepcopy(manifest())
    row = m["comparisons"]["random_pruning"][0]
    row["quantity"], row["source"], row["draft"] = HOSTILE[0], HOSTILE[1], HOSTILE[5]
    m["compression"]["node_importance"][0]["model"] = HOSTILE[4]
    m["items"]["R-F1"]["file_captions"]["random_pruning/R-F1.png"] = HOSTILE[2]
    m["items"]["R-F1"]["chapter"] = "<i>x</i>\n# heading"
    text, _ = pages.glance_sections(m, Path("/results"), chapters.CHAPTERS)
    assert "<img" not in text and "\n```{raw}" not in text and "\n# heading" not in text
    rendered = MD.render(text)
    assert not [b for b in ("<script", "<img", "<i>", 'href="javascript') if b in rendered]
    fences = [line for line in text.splitlines() if line.startswith("```")]
    ours = ["```", f"```{{figure}} figures/{pages.COMPRESSION_MAP}", "```", fences[4], "```",
            "```{figure} figures/random_pruning/R-F1.png", "```"]  # fmt: skip
    assert fences[0].startswith("```{table} Every draft number the chapters set") and fences[1:] == ours
    assert fences[4].startswith("```{table} Every compressed model")
    assert "mean acc" not in text and "&lt;script&gt;alert\\(1\\)" not in text  # parentheses stay plain
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.parametrize("path", BAD_FIGURES)
def test_a_figure_path_outside_the_results_is_refused(path):
    """An absolute figure path copied an outside image into _build/html/_images."""
    m = copy.deepcopy(manifest())
    m["items"]["R-F1"]["files"] = [path]
    m["items"]["R-F1"]["file_captions"] = {}
    with pytest.raises(ValueError, match="manifest item R-F1 names figure .*allowed: a relative path"):
        pages.glance_sections(m, Path("/results"), chapters.CHAPTERS)


def test_provenance_strings_on_a_page_note_are_escaped(project_root):
    prov = provenance.record(chapters.BASELINES, "full", {"computed on": HOSTILE[2]}, 60.0, project_root)
    prov["torch"], prov["commit"] = HOSTILE[0], "abc`\n```{raw} html"
    note = provenance.page_note(prov)
    assert note.count("\n") == 2 and note.startswith("```{note}\n") and note.endswith("\n```")
    assert "<script" not in MD.render(note.splitlines()[1])
