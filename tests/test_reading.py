"""A chapter page's reading flow: what was found after the question, the parameters folded
beside a rerun command, setup code folded."""

import nbformat

from netshrink.book import chapters, provenance, reading


def _page(*markdown):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(m) for m in markdown])
    params = nbformat.v4.new_code_cell("seed = 1")
    params.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(1, params)
    return nb


def test_the_found_box_quotes_the_chapters_findings_with_their_glued_numbers():
    page = _page("# T\\n\\nThe question?", "## What we found\n\nIt removes {glue:text}`n` nodes.\n\nMore.")
    box = reading.found_box(page.cells, [])
    assert box.startswith("```{admonition} What was found") and "{glue:text}`n` nodes" in box
    assert "More." not in box, "the first paragraph only"


def test_without_a_findings_section_the_box_lists_the_runs_compressed_models():
    row = {"model": "VGG, pruned", "data set": "CIFAR-10", "parameters": 436098, "base parameters": 3752746,
           "accuracy": 0.8709, "base accuracy": 0.882, "speedup": 2.587}  # fmt: skip
    box = reading.found_box(_page("# T").cells, [row] * 5)
    assert "436,098 of 3,752,746" in box and "87.09 % (was 88.20 %)" in box and "2.59 times" in box
    assert "and 1 more" in box
    assert reading.found_box(_page("# T").cells, []) is None


def test_the_parameters_cell_is_folded_beside_a_one_line_rerun_command():
    page = _page("# T")
    reading.fold_parameters(page, chapters.BASELINES, "quick")
    command, params = page.cells[1], page.cells[2]
    assert "hide-cell" in params.metadata["tags"]
    assert "--profile quick --chapters baselines" in command.source


def test_a_path_a_cell_returned_is_not_shown():
    cell = nbformat.v4.new_code_cell("report.figure(...)")
    path = nbformat.v4.new_output("execute_result", data={"text/plain": "PosixPath('/r/V-F1.png')"})
    number = nbformat.v4.new_output("execute_result", data={"text/plain": "3"})
    cell.outputs = [path, number]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert reading.drop_paths(nb) == 1 and nb.cells[0].outputs == [number]


def test_every_chapters_setup_code_is_folded_and_its_code_digest_unchanged(project_root):
    """Tags are how a page shows a cell: the committed full results stay current."""
    for chapter in chapters.CHAPTERS.values():
        nb = nbformat.read(project_root / chapter.notebook, as_version=4)
        code = [
            c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
        ]
        setup = [c for c in code if ".table(" not in c.source and ".figure(" not in c.source]
        assert setup and all("hide-input" in c.metadata.get("tags", []) for c in setup), chapter.name
        prov = provenance.read(project_root / "results", "full", chapter.name)
        if prov is not None:
            assert prov["notebook digest"] == provenance.notebook_digest(project_root / chapter.notebook)


def test_notebook_code_lines_are_bounded(project_root):
    """The notebooks' exemption from the 110-character line length is bounded: no code line over
    160 characters (the pages wrap longer lines; shortening them changes the code digests, so the
    bound tightens with each chapter's next full rerun)."""
    for chapter in chapters.CHAPTERS.values():
        nb = nbformat.read(project_root / chapter.notebook, as_version=4)
        long = [
            line
            for c in nb.cells
            if c.cell_type == "code"
            for line in c.source.splitlines()
            if len(line) > 160
        ]
        assert not long, f"{chapter.notebook}: {long[0][:80]}..."
