"""The book shows each chapter from the best run at hand: committed full results that match the
code, else the book's own profile."""

import json

import nbformat

from netshrink.book import chapters, provenance, sources
from netshrink.io import write_json


def _run(results, project_root, chapter, profile, items=None, params=None):
    """A finished run of `chapter` in `profile` under `results`: provenance, manifest entries
    (one figure each) and an executed notebook."""
    ran = {**(params or chapter.parameters(profile)), "computed on": "CPU (2 threads), float32"}
    write_json(results / profile / chapter.name / provenance.RECORD,
               provenance.record(chapter, profile, ran, 60.0, project_root))  # fmt: skip
    path = results / profile / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {"profile": profile, "items": {}}
    for item in items or chapter.items:
        manifest["items"][item] = {
            "chapter": chapter.name,
            "kind": "figure",
            "files": [f"{chapter.name}/{item}.png"],
        }
    manifest.setdefault("comparisons", {})[chapter.name] = [{"id": f"{profile} row", "profile": profile}]
    write_json(path, manifest)
    nb = sources.executed_notebook(results, profile, chapter)
    nb.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), nb)


def test_a_quick_book_takes_committed_full_results_where_they_match_the_code(tmp_path, project_root):
    random, importance = chapters.RANDOM_PRUNING, chapters.NODE_IMPORTANCE
    for chapter in chapters.CHAPTERS.values():
        _run(tmp_path, project_root, chapter, "quick")
    _run(tmp_path, project_root, random, "full")
    chosen = sources.chapter_profiles("quick", tmp_path, project_root)
    assert chosen == {c: "full" if c == random.name else "quick" for c in chapters.CHAPTERS}
    manifest = sources.book_manifest("quick", tmp_path, project_root)
    assert manifest["items"]["R-T1"]["profile"] == "full" and manifest["items"]["B-T1"]["profile"] == "quick"
    assert manifest["comparisons"][random.name] == [{"id": "full row", "profile": "full"}]
    assert set(manifest["items"]) == {i for c in chapters.CHAPTERS.values() for i in c.items}
    # a book of another profile shows that profile alone
    assert set(sources.chapter_profiles("smoke", tmp_path, project_root).values()) == {"smoke"}
    # full results that no longer match the code are not shown: the quick run is
    _run(
        tmp_path, project_root, importance, "full", params={**importance.parameters("full"), "n_networks": 2}
    )
    assert sources.chapter_profiles("quick", tmp_path, project_root)[importance.name] == "quick"
    # nor are full results whose executed notebook is missing
    sources.executed_notebook(tmp_path, "full", random).unlink()
    assert sources.chapter_profiles("quick", tmp_path, project_root)[random.name] == "quick"


def _notebook(*cells):
    """A notebook of ('m' or 'c', source, tags) cells."""
    make = {"m": nbformat.v4.new_markdown_cell, "c": nbformat.v4.new_code_cell}
    nb = nbformat.v4.new_notebook()
    for kind, text, tags in cells:
        cell = make[kind](text)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def test_a_committed_run_shows_the_current_prose_beside_its_outputs():
    executed = _notebook(
        ("m", "old title", []),
        ("c", "x = 1", ["parameters"]),
        ("c", "x = 2", ["injected-parameters"]),
        ("c", "print(x)", []),
        ("m", "old text", []),
    )
    executed.cells[3].outputs = [nbformat.v4.new_output("stream", text="2")]
    source = _notebook(("m", "new title", []), ("c", "x = 1", ["parameters"]), ("c", "print(x)", []),
                       ("m", "new text", []))  # fmt: skip
    page = sources.current_prose(executed, source)
    assert [c.source for c in page.cells] == ["new title", "x = 1", "x = 2", "print(x)", "new text"]
    assert page.cells[3].outputs[0]["text"] == "2"


def test_notebooks_whose_cells_do_not_pair_up_keep_the_prose_they_ran_with():
    executed = _notebook(("m", "old title", []), ("c", "print(1)", []), ("m", "old text", []))
    source = _notebook(("m", "new title", []), ("m", "a new section", []), ("c", "print(1)", []))
    page = sources.current_prose(executed, source)
    assert [c.source for c in page.cells] == ["old title", "print(1)", "old text"]
