"""Provenance records, and the check that committed `full` results still match the code."""

import json

import pytest

from netshrink.book import chapters, provenance
from netshrink.io import write_json


@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_committed_full_results_match_the_code(project_root, chapter):
    results = project_root / "results"
    if provenance.read(results, "full", chapter.name) is None:
        pytest.skip(f"no committed full results of {chapter.name} (README, 'Profiles and thesis-scale runs')")
    reasons = provenance.stale(chapter, "full", results, project_root)
    assert not reasons, (
        f"results/full/{chapter.name} no longer matches the code ({'; '.join(reasons)}): rerun the chapter's "
        "full profile (README) or say in the commit why not"
    )


def _fake_run(results, project_root, chapter, params=None, items=None):
    params = params or chapter.parameters("full")
    ran = {**params, "computed on": "NVIDIA H100 (cuda:0), bfloat16"}
    prov = provenance.record(chapter, "full", ran, 480.0, project_root)
    prov[provenance.FILES] = provenance.file_digests(results / "full" / chapter.name)
    write_json(results / "full" / chapter.name / provenance.RECORD, prov)
    manifest = {"profile": "full", "items": {i: {"chapter": chapter.name} for i in (items or chapter.items)}}
    write_json(results / "full" / "manifest.json", manifest)
    return prov


def test_a_record_names_commit_device_versions_time_and_parameters(tmp_path, project_root):
    prov = _fake_run(tmp_path, project_root, chapters.BASELINES)
    assert len(prov["commit"]) == 40 and prov["wall seconds"] == 480.0 and prov["torch"]
    assert prov["parameters"]["cifar_aug_epochs"] == 50 and "computed on" not in prov["parameters"]
    assert provenance.stale(chapters.BASELINES, "full", tmp_path, project_root) == []
    note = provenance.page_note(prov)
    assert "**`full`** profile on NVIDIA H100 (cuda:0), bfloat16, at commit" in note and "8.0 minutes" in note


def test_the_note_says_which_models_an_earlier_run_trained_and_how_long_that_took(project_root):
    models = [
        {"model": "vgg16 on cifar10", "key": "a", "from cache": True, "training seconds": 5400.0},
        {"model": "fine-tuning", "key": "b", "from cache": False, "training seconds": 600.0},
        {"model": "fine-tuning", "key": "b", "from cache": True, "training seconds": 600.0},  # reloaded
    ]
    vgg = chapters.VGG_CASE_STUDY
    prov = provenance.record(vgg, "full", vgg.parameters("full"), 1800.0, project_root, models=models)
    assert provenance.cached_models(prov) == (2, 1, 5400.0)
    note = provenance.page_note(prov)
    assert ("30.0 minutes, with 1 of its 2 trained models from the cache of an earlier run of the same "
            "configuration, whose training took 90.0 minutes more") in note  # fmt: skip
    everything_here = provenance.record(vgg, "full", {}, 60.0, project_root, models=models[1:])
    assert provenance.cached_models(everything_here) == (1, 0, 0.0)
    assert "1.0 minutes)" in provenance.page_note(everything_here)


def test_changed_parameters_items_or_notebook_make_results_stale(tmp_path, project_root):
    chapter = chapters.BASELINES
    _fake_run(tmp_path, project_root, chapter, params={**chapter.parameters("full"), "cifar_epochs": 7})
    assert provenance.stale(chapter, "full", tmp_path, project_root) == [
        "parameters differ: cifar_epochs ran 7, now 15"
    ]
    _fake_run(tmp_path, project_root, chapter, items=chapter.items[:-1])
    assert provenance.stale(chapter, "full", tmp_path, project_root) == [
        f"items differ: the chapter now lists ['{chapter.items[-1]}'], which the run did not make"
    ]
    _fake_run(tmp_path, project_root, chapter)
    path = tmp_path / "full" / chapter.name / provenance.RECORD
    prov = json.loads(path.read_text())
    path.write_text(json.dumps({**prov, "notebook digest": "0" * 16}))
    assert provenance.stale(chapter, "full", tmp_path, project_root) == [
        "chapters/01_baselines.ipynb changed since the run"
    ]
    assert provenance.stale(chapters.VGG_CASE_STUDY, "full", tmp_path, project_root) == ["no provenance.json"]


def test_the_notebook_digest_ignores_outputs_and_parameter_values(tmp_path, project_root):
    import nbformat

    nb = nbformat.read(project_root / chapters.BASELINES.notebook, as_version=4)
    before = provenance.notebook_digest(project_root / chapters.BASELINES.notebook)
    nb.cells[1].source = nb.cells[1].source.replace("seed = 0", "seed = 5")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="hello")]
    nbformat.write(nb, tmp_path / "a.ipynb")
    assert provenance.notebook_digest(tmp_path / "a.ipynb") == before
    code = next(
        c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
    )
    code.source += "\nprint(1)"
    nbformat.write(nb, tmp_path / "b.ipynb")
    assert provenance.notebook_digest(tmp_path / "b.ipynb") != before


def test_a_record_names_the_code_the_run_started_from(project_root):
    chapter = chapters.RANDOM_PRUNING
    state = provenance.code_state(chapter, project_root)
    assert len(state["commit"]) == 40 and state["notebook digest"] == provenance.notebook_digest(
        project_root / chapter.notebook
    )
    started = {"commit": "0" * 40, "uncommitted changes": False, "notebook digest": "f" * 16}
    prov = provenance.record(chapter, "full", chapter.parameters("full"), 1.0, project_root, state=started)
    assert (prov["commit"], prov["uncommitted changes"], prov["notebook digest"]) == (
        "0" * 40,
        False,
        "f" * 16,
    )


def test_cpu_usage_is_the_difference_of_two_readings():
    a = provenance.Usage(10.0, 1.0, 1000, 2)
    b = provenance.Usage(110.0, 6.0, 51000, 2)
    used = b - a
    assert used.as_record() == {"user seconds": 100.0, "system seconds": 5.0, "system share": 0.0476,
                                "minor page faults": 50000, "major page faults": 0}  # fmt: skip
    assert used.summary() == "CPU 100 s user + 5 s system (4.8 % system), 0.05 M minor page faults"


def _digested_run(tmp_path, project_root, chapter):
    folder = tmp_path / "full" / chapter.name
    folder.mkdir(parents=True)
    (folder / "B-T1.csv").write_text("model,accuracy\nmlp,0.97\n")
    (folder / "glue.json").write_text("{}")
    _fake_run(tmp_path, project_root, chapter)
    return folder


def test_a_changed_missing_or_added_result_file_makes_results_stale_naming_it(tmp_path, project_root):
    """Issue 41, item 8: a CSV row edited by hand no longer passes the provenance check."""
    chapter = chapters.BASELINES
    folder = _digested_run(tmp_path, project_root, chapter)
    assert provenance.read(tmp_path, "full", chapter.name)["files"].keys() == {"B-T1.csv", "glue.json"}
    assert provenance.stale(chapter, "full", tmp_path, project_root) == []
    (folder / "B-T1.csv").write_text("model,accuracy\nmlp,0.99\n")  # one number changed by hand
    (folder / "glue.json").unlink()
    (folder / "B-T9.csv").write_text("x\n")
    reasons = provenance.stale(chapter, "full", tmp_path, project_root)
    assert reasons == [
        f"{folder / 'glue.json'} is missing",
        f"{folder / 'B-T1.csv'} changed since the run (its SHA-256 differs from the record)",
        f"{folder / 'B-T9.csv'} is not in the run's record",
    ]
    from netshrink.book import sources

    assert sources.chapter_profiles("quick", tmp_path, project_root)["baselines"] == "quick"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: {k: v for k, v in p.items() if k != "wall seconds"}, "lacks the field 'wall seconds'"),
        (lambda p: {**p, "parameters": "none"}, "field 'parameters' holds str; allowed: dict"),
        (lambda p: {**p, "wall seconds": True}, "field 'wall seconds' holds bool"),
        (lambda p: {**p, "files": {"a.csv": "beef"}}, "field 'files' must map file names to SHA-256"),
        (lambda p: [p], "holds a JSON list"),
    ],
)
def test_a_malformed_record_is_named_with_its_field_and_never_raises_a_key_error(
    tmp_path, project_root, edit, message
):
    """Issue 41, item 12: a record without a field names the file and the field."""
    chapter = chapters.BASELINES
    folder = _digested_run(tmp_path, project_root, chapter)
    path = folder / provenance.RECORD
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(provenance.BadRecord, match=message) as err:
        provenance.read(tmp_path, "full", chapter.name)
    assert str(path) in str(err.value)
    assert provenance.read(tmp_path, "full", chapter.name, strict=False) is None
    assert message.split(";")[0].split("(")[0] in provenance.stale(chapter, "full", tmp_path, project_root)[0]
    path.write_text("{not json")
    with pytest.raises(provenance.BadRecord, match="is not valid JSON"):
        provenance.read(tmp_path, "full", chapter.name)


def test_the_build_names_a_malformed_record_and_a_changed_file_and_still_makes_its_pages(
    tmp_path, project_root
):
    """Issue 41, items 8 and 12: the build warns naming the file (and field); no KeyError."""
    from netshrink.book import pages, sphinx_ext

    folder = _digested_run(tmp_path, project_root, chapters.BASELINES)
    (folder / "B-T1.csv").write_text("model,accuracy\nmlp,0.99\n")
    nodes = tmp_path / "full" / "node_importance"
    nodes.mkdir()
    prov = provenance.record(chapters.NODE_IMPORTANCE, "full", {}, 1.0, project_root)
    del prov["wall seconds"]
    write_json(nodes / provenance.RECORD, prov)
    run = sphinx_ext.BookRun("quick", tmp_path, project_root, {c: "full" for c in chapters.CHAPTERS}, {})
    problems = sphinx_ext.record_problems(run)
    assert problems == [
        f"{folder / 'B-T1.csv'} changed since the run (its SHA-256 differs from the record)",
        f"{nodes / provenance.RECORD} lacks the field 'wall seconds'; rerun the chapter or restore the file",
    ]
    text = pages.sources_section(run, chapters.CHAPTERS)  # raised KeyError: 'wall seconds'
    assert "node_importance" in text or "Node" in text
