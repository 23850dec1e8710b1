"""The book shows each chapter from the best run at hand: committed full results that match the
code, else the book's own profile."""

import json
import time

import nbformat

from netshrink.book import chapters, provenance, sources
from netshrink.io import write_json


def _run(results, project_root, chapter, profile, items=None, params=None):
    """A finished run of `chapter` in `profile` under `results`: provenance, manifest entries
    (one figure each) and an executed notebook."""
    ran = {**(params or chapter.parameters(profile)), "computed on": "CPU (2 threads), float32"}
    prov = provenance.record(chapter, profile, ran, 60.0, project_root)
    folder = results / profile / chapter.name
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / provenance.RECORD, {**prov, provenance.FILES: provenance.file_digests(folder)})
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


def test_a_quick_book_shows_each_chapters_newest_run_that_matches_the_code(tmp_path, project_root):
    random, importance = chapters.RANDOM_PRUNING, chapters.NODE_IMPORTANCE
    for chapter in chapters.CHAPTERS.values():  # a fresh clone: committed full results only
        _run(tmp_path, project_root, chapter, "full")
    assert set(sources.chapter_profiles("quick", tmp_path, project_root).values()) == {"full"}
    time.sleep(1.1)  # provenance dates have seconds
    _run(tmp_path, project_root, random, "quick")  # a rerun made by hand
    chosen = sources.chapter_profiles("quick", tmp_path, project_root)
    assert chosen == {c: "quick" if c == random.name else "full" for c in chapters.CHAPTERS}
    manifest = sources.book_manifest("quick", tmp_path, project_root)
    assert manifest["items"]["R-T1"]["profile"] == "quick" and manifest["items"]["B-T1"]["profile"] == "full"
    assert manifest["comparisons"][random.name] == [{"id": "quick row", "profile": "quick"}]
    assert set(manifest["items"]) == {i for c in chapters.CHAPTERS.values() for i in c.items}
    notes = " ".join(sources.run_notes(random, "quick", tmp_path, project_root))
    assert "committed `full` results are in" in notes and "random_pruning" in notes
    # a book of another profile shows that profile alone
    assert set(sources.chapter_profiles("smoke", tmp_path, project_root).values()) == {"smoke"}
    # a smoke run with its own parameters is shown next, and its page names them
    time.sleep(1.1)
    n = importance.parameters("smoke")["n_networks"] + 1
    _run(
        tmp_path,
        project_root,
        importance,
        "smoke",
        params={**importance.parameters("smoke"), "n_networks": n},
    )
    assert sources.chapter_profiles("quick", tmp_path, project_root)[importance.name] == "smoke"
    notes = " ".join(sources.run_notes(importance, "smoke", tmp_path, project_root))
    assert f"`n_networks` = `{n}`" in notes, notes
    # a run whose items no longer match the chapter, or whose notebook is missing, is not shown
    path = tmp_path / "smoke" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["items"][importance.items[0]]
    write_json(path, manifest)
    assert sources.chapter_profiles("quick", tmp_path, project_root)[importance.name] == "full"
    sources.executed_notebook(tmp_path, "quick", random).unlink()
    assert sources.chapter_profiles("quick", tmp_path, project_root)[random.name] == "full"


def test_a_rerun_that_failed_leaves_the_page_on_the_last_good_run_and_says_so(tmp_path, project_root):
    random = chapters.RANDOM_PRUNING
    _run(tmp_path, project_root, random, "full")
    assert sources.run_notes(random, "full", tmp_path, project_root) == []
    failed = sources.executed_notebook(tmp_path, "quick", random).with_suffix(".failed.ipynb")
    failed.parent.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), failed)
    assert sources.chapter_profiles("quick", tmp_path, project_root)[random.name] == "full"
    (note,) = sources.run_notes(random, "full", tmp_path, project_root)
    assert "A later run failed" in note and failed.name in note and "last good run" in note


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
    source.cells[2].metadata["tags"] = ["hide-input"]  # how the page shows it: no change of its code
    page = sources.current_prose(executed, source)
    assert [c.source for c in page.cells] == ["new title", "x = 1", "x = 2", "print(x)", "new text"]
    assert page.cells[3].outputs[0]["text"] == "2"
    assert page.cells[3].metadata["tags"] == ["hide-input"]
    assert page.cells[2].metadata["tags"] == ["injected-parameters"]


def test_notebooks_whose_cells_do_not_pair_up_keep_the_prose_they_ran_with():
    executed = _notebook(("m", "old title", []), ("c", "print(1)", []), ("m", "old text", []))
    source = _notebook(("m", "new title", []), ("m", "a new section", []), ("c", "print(1)", []))
    page = sources.current_prose(executed, source)
    assert [c.source for c in page.cells] == ["old title", "print(1)", "old text"]


def test_make_book_runs_only_chapters_without_results_matching_the_code(tmp_path, project_root, capsys):

    random = chapters.RANDOM_PRUNING
    for chapter in chapters.CHAPTERS.values():
        if chapter is not random:
            _run(tmp_path, project_root, chapter, "full")
    todo = sources.needing_a_run(list(chapters.CHAPTERS.values()), "quick", tmp_path, project_root)
    out = capsys.readouterr().out
    assert todo == [random]
    assert "== chapter random_pruning: runs (no results yet)" in out
    assert "== chapter baselines: the book shows its full run of" in out and "--all" in out
    lines = sources.shown_runs("quick", tmp_path, project_root)
    assert any(line.startswith("page baselines: the full run of") for line in lines)
    assert "page random_pruning: not run yet, shows the notebook without outputs" in lines


def test_the_runner_builds_without_running_when_every_chapter_has_results(tmp_path, project_root, monkeypatch,
                                                                          capsys):  # fmt: skip
    from netshrink.book import runner

    for chapter in chapters.CHAPTERS.values():
        _run(tmp_path, project_root, chapter, "full")
    monkeypatch.setenv("NETSHRINK_RESULTS", str(tmp_path))
    ran = []
    monkeypatch.setattr(runner, "run_chapter", lambda chapter, *a, **k: ran.append(chapter.name))
    assert runner.main(["--profile", "quick", "--no-build"]) == 0
    assert ran == []
    assert runner.main(["--profile", "quick", "--no-build", "--all", "--chapters", "baselines"]) == 0
    assert runner.main(["--profile", "quick", "--no-build", "--all"]) == 0
    assert ran == ["baselines", *chapters.CHAPTERS]
