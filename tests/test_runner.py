import ast
import json
import shutil

import nbformat
import pytest

from netshrink import chapters, runner


@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_notebook_parameters_cell_holds_the_quick_profile(project_root, chapter):
    defaults = runner.notebook_parameters(project_root / chapter.notebook)
    assert defaults.keys() == chapter.parameters("quick").keys()
    for name, value in chapter.parameters("quick").items():
        assert ast.literal_eval(defaults[name]) == value, (
            f"{chapter.notebook}: {name} = {defaults[name]}, profile: {value!r}"
        )


@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_every_profile_sets_the_same_parameters(chapter):
    keys = {p: set(chapter.parameters(p)) for p in ("smoke", "quick", "full")}
    assert keys["smoke"] == keys["quick"] == keys["full"]


def test_committed_notebooks_hold_no_outputs(project_root):
    notebooks = sorted((project_root / "chapters").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


def test_every_chapter_is_in_the_table_of_contents(project_root):
    toc = (project_root / "_toc.yml").read_text()
    for chapter in chapters.CHAPTERS.values():
        assert f"file: {chapter.notebook.removesuffix('.ipynb')}" in toc


def test_unknown_profile_and_chapter_are_refused(capsys):
    assert runner.main(["--profile", "fast", "--no-build"]) == 2
    assert "profile='fast' is not known; allowed values: smoke, quick, full" in capsys.readouterr().err
    assert runner.main(["--chapters", "nope", "--no-build"]) == 2
    assert "allowed values: baselines" in capsys.readouterr().err


def test_unknown_parameter_is_refused(project_root, results_dir):
    chapter = chapters.CHAPTERS["baselines"]
    with pytest.raises(ValueError, match=r"parameters \['epochs'\] are not in"):
        runner.run_chapter(chapter, "smoke", overrides={"epochs": 3}, results=results_dir)


def test_bad_parameter_value_fails_the_chapter_with_a_clear_error(project_root, results_dir):
    chapter = chapters.CHAPTERS["baselines"]
    with pytest.raises(runner.ChapterFailed, match="epochs=-1 must be a non-negative integer"):
        runner.run_chapter(
            chapter, "smoke", overrides={"mlp_epochs": -1}, results=results_dir, progress=False
        )
    assert not (results_dir / "smoke" / "notebooks" / "01_baselines.ipynb").exists()
    assert (results_dir / "smoke" / "notebooks" / "01_baselines.failed.ipynb").is_file()


def test_a_failing_chapter_shows_the_failing_cell(tmp_path, project_root):
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    shutil.copy(project_root / "_toc.yml", root / "_toc.yml")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "profile = 'quick'\nx = 1\ndevice = 'auto'\nprecision = 'auto'",
                metadata={"tags": ["parameters"]},
            ),
            nbformat.v4.new_code_cell("y = x + 1\nraise RuntimeError(f'broken at {y}')"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "chapters" / "bad.ipynb")
    bad = chapters.Chapter(
        "bad", "chapters/bad.ipynb", "Bad", ("X-T1",), {p: {"x": 2} for p in ("smoke", "quick", "full")}
    )
    with pytest.raises(runner.ChapterFailed) as err:
        runner.run_chapter(bad, "smoke", root=root, results=tmp_path / "results", progress=False)
    text = str(err.value)
    assert "raise RuntimeError(f'broken at {y}')" in text and "broken at 3" in text
    failed = nbformat.read(tmp_path / "results/smoke/notebooks/bad.failed.ipynb", as_version=4)
    injected = [c for c in failed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "x = 2" in injected[0].source
    assert json.loads(json.dumps(failed))  # a readable notebook, kept for inspection
