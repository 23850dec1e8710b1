import ast
import json
import os
import re
import shutil

import nbformat
import pytest

from netshrink.book import cells, chapters, combine, executed, report, runner
from netshrink.book.chapter import Chapter
from netshrink.book.report import PROFILES
from netshrink.io import write_json


@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_notebook_parameters_cell_holds_the_quick_profile(project_root, chapter):
    defaults = cells.notebook_parameters(project_root / chapter.notebook)
    assert defaults.keys() == chapter.parameters("quick").keys()
    for name, value in chapter.parameters("quick").items():
        assert ast.literal_eval(defaults[name]) == value, (
            f"{chapter.notebook}: {name} = {defaults[name]}, profile: {value!r}"
        )


def test_the_parameters_cells_are_generated_from_the_chapters(project_root, tmp_path):
    assert cells.stale_cells(project_root, list(chapters.CHAPTERS.values())) == []
    chapter = chapters.BASELINES
    copy = tmp_path / chapter.notebook
    copy.parent.mkdir(parents=True)
    nb = nbformat.read(project_root / chapter.notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = cell.source.replace("seed = 0", "seed = 1")  # a value typed by hand
    nbformat.write(nb, str(copy))
    assert cells.stale_cells(tmp_path, [chapter]) == [chapter.notebook]
    assert cells.write_cells(tmp_path, [chapter]) == [chapter.notebook]
    assert cells.stale_cells(tmp_path, [chapter]) == [] and cells.write_cells(tmp_path, [chapter]) == []
    assert cells.notebook_parameters(copy)["seed"] == "0"


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


@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_notebooks_stay_thin(project_root, chapter):
    """Experiments live in the package: no code cell holds more than 15 lines of code (the
    parameters cell, one plain value a line, aside), and every import is of netshrink, pandas
    or the standard library, never a `sys.path` edit."""
    nb = nbformat.read(project_root / chapter.notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        code = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(code) <= 15, f"{chapter.notebook}: a cell of {len(code)} lines:\n{cell.source}"
        assert "sys.path" not in cell.source
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert all(n.split(".")[0] in ("netshrink", "pandas") for n in names), names


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
    with pytest.raises(ValueError, match=r"has no parameter 'epochs' \(did you mean 'mlp_epochs'\?\)"):
        runner.run_chapter(chapter, "smoke", overrides={"epochs": 3}, results=results_dir)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cifar_aug_epochs": -1}, r"cifar_aug_epochs=-1 is out of range; allowed: an integer >= 0"),
        ({"mlp_epochs": "3"}, r"mlp_epochs='3' must be an integer >= 0"),
        ({"mnist_train_size": 0}, r"mnist_train_size=0 is out of range"),
        ({"device": "tpu"}, r"device='tpu' is not known; allowed values: auto, cpu, cuda"),
    ],
)
def test_bad_parameter_value_is_refused_before_any_work(project_root, results_dir, overrides, message):
    chapter = chapters.CHAPTERS["baselines"]
    with pytest.raises(ValueError, match=r"chapters/01_baselines.ipynb: " + message):
        runner.run_chapter(chapter, "smoke", overrides=overrides, results=results_dir, progress=False)
    assert not results_dir.exists() or not any(results_dir.rglob("*.*")), "nothing may be written"


def test_runner_takes_papermill_style_parameters_and_checks_them_all_first(capsys):
    assert runner.main(["--profile", "smoke", "--no-build", "-p", "mlp_epoch", "1"]) == 2
    assert (
        "no selected chapter has a parameter 'mlp_epoch' (did you mean 'mlp_epochs'?)"
        in capsys.readouterr().err
    )
    # a bad value of the last chapter stops the run before the first chapter starts
    assert runner.main(["--profile", "smoke", "--no-build", "-p", "max_rate", "2"]) == 2
    assert "05_vgg_case_study.ipynb: max_rate=2.0 is out of range" in capsys.readouterr().err
    chapters_ = chapters.select("baselines vgg_case_study")
    parsed = cells.parse_overrides([["seed", "3"], ["width", "0.5"], ["sensitivity_rates", "[0.5]"]],
                                    chapters_, runner.paths.project_root())  # fmt: skip
    assert parsed == {
        "baselines": {"seed": 3},
        "vgg_case_study": {"seed": 3, "width": 0.5, "sensitivity_rates": [0.5]},
    }


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
    bad = Chapter(
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


def test_a_failed_rerun_leaves_the_last_good_results_whole(tmp_path, project_root):
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    shutil.copy(project_root / "_toc.yml", root / "_toc.yml")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "profile = 'quick'\nx = 1\ndevice = 'auto'\nprecision = 'auto'",
                metadata={"tags": ["parameters"]},
            ),
            nbformat.v4.new_code_cell(
                "import pandas as pd\nfrom netshrink.book.report import Report\n"
                "r = Report('tiny', profile, {'x': x}, display=False)\n"
                "r.table('X-T1', pd.DataFrame({'a': [x]}), 'x itself')\n"
                "if x < 0:\n    raise RuntimeError('negative x')"
            ),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "chapters" / "tiny.ipynb")
    tiny = Chapter("tiny", "chapters/tiny.ipynb", "Tiny", ("X-T1",), {p: {"x": 2} for p in PROFILES})
    results = tmp_path / "results"
    csv = results / "smoke" / "tiny" / "X-T1.csv"
    executed = runner.run_chapter(tiny, "smoke", root=root, results=results, progress=False)
    assert "2" in csv.read_text()

    with pytest.raises(runner.ChapterFailed, match="negative x"):
        runner.run_chapter(tiny, "smoke", root=root, results=results, overrides={"x": -5}, progress=False)
    assert csv.read_text().splitlines()[1].endswith(",2"), "the good table was replaced"
    entry = report.read_manifest("smoke", results)["items"]["X-T1"]
    assert entry["params"]["x"] == 2
    assert executed.is_file() and executed.with_suffix(".failed.ipynb").is_file()
    assert [p.name for p in results.iterdir()] == ["smoke"], "a staging folder was left behind"

    runner.run_chapter(tiny, "smoke", root=root, results=results, overrides={"x": 3}, progress=False)
    assert csv.read_text().splitlines()[1].endswith(",3")
    assert not executed.with_suffix(".failed.ipynb").exists()
    assert sorted(p.name for p in (results / "smoke").iterdir()) == [
        ".running",
        "manifest.json",
        "manifest.lock",
        "notebooks",
        "tiny",
    ]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"cifar_aug_epochs": -1}, "cifar_aug_epochs=-1 is out of range"),
        ({"mlp_epoch": 1}, "has no parameter 'mlp_epoch' (did you mean 'mlp_epochs'?)"),
    ],
)
def test_plain_papermill_stops_in_the_first_cell_before_any_work(
    project_root, results_dir, tmp_path, parameters, message
):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(
            str(project_root / chapters.BASELINES.notebook), str(tmp_path / "out.ipynb"),
            parameters={"profile": "smoke", **parameters}, cwd=str(project_root), kernel_name="python3",
            progress_bar=False,
        )  # fmt: skip
    assert message in err.value.evalue and err.value.exec_count == 3  # parameters, injected, first cell
    assert not results_dir.exists(), "nothing is written before the parameters are checked"


def _tiny_chapter(tmp_path, project_root, body):
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    shutil.copy(project_root / "_toc.yml", root / "_toc.yml")
    params = "profile = 'quick'\nx = 1\ndevice = 'auto'\nprecision = 'auto'"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(body)])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "chapters" / "tiny.ipynb")
    tiny = Chapter("tiny", "chapters/tiny.ipynb", "Tiny", ("X-T1",), {p: {"x": 2} for p in PROFILES})
    return root, tiny


TABLE_CELL = (
    "import pandas as pd\nfrom netshrink.book.report import Report\n"
    "r = Report('tiny', profile, {'x': x}, display=False)\n"
    "r.table('X-T1', pd.DataFrame({'a': [x]}), 'x itself')"
)


def test_a_second_run_of_the_same_chapter_is_refused_naming_the_running_process(tmp_path, project_root):
    root, tiny = _tiny_chapter(tmp_path, project_root, TABLE_CELL)
    results = tmp_path / "results"
    runner.run_chapter(tiny, "smoke", root=root, results=results, progress=False)
    csv = results / "smoke" / "tiny" / "X-T1.csv"
    before = csv.read_text()
    lock = runner.running_dir(results, "smoke") / "tiny.lock"
    with runner.hold_lock(lock, "chapter 'tiny' (smoke)"):
        with pytest.raises(
            runner.Busy, match=f"chapter 'tiny' \\(smoke\\) is already running in process {os.getpid()}"
        ):
            runner.run_chapter(tiny, "smoke", root=root, results=results, overrides={"x": 5}, progress=False)
        assert f"tiny: process {os.getpid()}" in runner.status_report("smoke", results)
    assert csv.read_text() == before, "the refused run touched the results"
    assert runner.status_report("smoke", results) == "no chapter of profile 'smoke' is running"
    runner.run_chapter(
        tiny, "quick", root=root, results=results, progress=False
    )  # another profile: its own lock


def test_a_run_records_the_cpu_and_its_kernels_cpu_seconds_and_prints_its_status(
    tmp_path, project_root, capsys
):
    body = ("from netshrink import progress\nimport time\nprogress.update(stage='sleeping')\n"
            "time.sleep(1.5)\n" + TABLE_CELL)  # fmt: skip
    root, tiny = _tiny_chapter(tmp_path, project_root, body)
    results = tmp_path / "results"
    runner.run_chapter(tiny, "smoke", root=root, results=results, progress=False, status_every=0.2)
    prov = json.loads((results / "smoke" / "tiny" / "provenance.json").read_text())
    assert prov["cpu"]["model"] and prov["cpu"]["vector unit"] and prov["cpu"]["threads"] >= 1
    usage = prov["cpu usage"]
    assert usage["user seconds"] > 0.5, "the kernel's CPU time (imports of torch, pandas) is counted"
    assert 0 <= usage["system share"] < 1 and usage["minor page faults"] > 0
    assert prov["models"] == [], "the tiny chapter trains nothing"
    out = capsys.readouterr().out
    assert "sleeping" in out and "tiny: " in out and "% system" in out
    assert "0 models trained and 0 from the cache" in out
    assert not (runner.running_dir(results, "smoke") / "tiny.status.json").exists()
    # where the time went: the sleeping cell first, with its first line
    slowest = re.search(r"^ +([0-9.]+) s  cell 3: from netshrink import progress$", out, re.M)
    assert slowest and float(slowest.group(1)) >= 1.5, out


def test_device_chapter_runs_a_chapter_and_its_results_are_adopted_elsewhere(tmp_path, project_root):
    """tools/device-chapter end to end on the CPU at smoke size (as on the GPU machine, without
    its pack): the chapter's results come back as results.tgz and are adopted into another
    results root with their manifest entries and notebook; the last good results stay otherwise."""
    import subprocess
    import sys

    device_results, out = tmp_path / "device-results", tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "NETSHRINK_RESULTS": str(device_results), "OUT": str(out), "PYTHON": sys.executable}
    cmd = [str(project_root / "tools" / "device-chapter"), "random_pruning", "smoke", "-p", "device", "cpu",
           "-p", "n_trials", "5", "--status-every", "0"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    bundle = out / "results.tgz"
    assert bundle.is_file()

    here = tmp_path / "here"
    (here / "smoke" / "baselines").mkdir(parents=True)  # another chapter's results stay as they are
    write_json(
        here / "smoke" / "manifest.json", {"profile": "smoke", "items": {"B-T1": {"chapter": "baselines"}}}
    )
    assert combine.adopt(bundle, "smoke", here) == ["random_pruning"]
    items = report.read_manifest("smoke", here)["items"]
    assert set(chapters.RANDOM_PRUNING.items) <= set(items) and items["B-T1"] == {"chapter": "baselines"}
    assert (here / "smoke" / "random_pruning" / "provenance.json").is_file()
    assert (here / "smoke" / "notebooks" / "02_random_pruning.ipynb").is_file()
    with pytest.raises(ValueError, match="holds no finished chapter of profile 'full'"):
        combine.adopt(bundle, "full", here)
    with pytest.raises(ValueError, match="neither a results folder nor a results.tgz"):
        combine.adopt(tmp_path / "missing.tgz", "smoke", here)


def test_values_are_read_as_papermill_reads_them():
    read = cells.read_value
    assert read("lr", "1e-3") == 0.001 and read("seed", "3") == 3 and read("x", "True") is True
    assert read("x", "None") is None and read("rates", "[0.5, 0.9]") == [0.5, 0.9]
    assert read("plan", "{conv2: [tucker2, vbmf]}") == {"conv2": ["tucker2", "vbmf"]}
    assert read("r", "vbmf") == "vbmf"


def test_a_profile_parameter_that_disagrees_with_the_profile_is_refused_before_any_work(capsys, results_dir):
    argv = ["--profile", "smoke", "--chapters", "random_pruning", "--no-build", "-p", "profile", "quick"]
    assert runner.main(argv) == 2
    assert "-p profile 'quick' disagrees with --profile 'smoke'" in capsys.readouterr().err
    assert not results_dir.exists()
    with pytest.raises(ValueError, match="disagrees with --profile 'smoke'"):
        runner.run_chapter(chapters.RANDOM_PRUNING, "smoke", overrides={"profile": "quick"}, progress=False)


def test_a_dead_kernel_ends_in_one_line_naming_the_chapter_and_cell(tmp_path, project_root):
    root, tiny = _tiny_chapter(tmp_path, project_root, TABLE_CELL)
    results = tmp_path / "results"
    runner.run_chapter(tiny, "smoke", root=root, results=results, progress=False)
    nb = nbformat.read(root / tiny.notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))
    nbformat.write(nb, root / tiny.notebook)
    with pytest.raises(runner.ChapterFailed) as err:
        runner.run_chapter(tiny, "smoke", root=root, results=results, overrides={"x": 5}, progress=False)
    text = str(err.value)
    assert "\n" not in text and "chapter 'tiny' stopped in cell 4" in text and "DeadKernelError" in text
    assert (results / "smoke" / "notebooks" / "tiny.failed.ipynb").is_file()
    assert (results / "smoke" / "tiny" / "X-T1.csv").read_text().splitlines()[1].endswith(",2")


def _standalone_notebook(path, body):
    """A notebook that starts a chapter 'tiny' through `Chapter.start`, as the book's do."""
    start = (
        "import pandas as pd\nfrom netshrink.book.chapter import Chapter\n"
        "tiny = Chapter('tiny', 'chapters/tiny.ipynb', 'Tiny', ('X-T1',), "
        "{p: {'x': 2} for p in ('smoke', 'quick', 'full')})\n"
        "run = tiny.start(globals(), display=False)\n"
        "run.report.table('X-T1', pd.DataFrame({'a': [x]}), 'x itself')\nrun.report.glue('x', x)"
    )
    params = "profile = 'smoke'\nx = 1\ndevice = 'cpu'\nprecision = 'auto'"
    cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})]
    nb = nbformat.v4.new_notebook(
        cells=cells + [nbformat.v4.new_code_cell(start), nbformat.v4.new_code_cell(body)]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_plain_papermill_publishes_only_a_run_that_succeeded(tmp_path, monkeypatch):
    import papermill as pm

    results = tmp_path / "results"
    monkeypatch.setenv("NETSHRINK_RESULTS", str(results))
    monkeypatch.delenv("NETSHRINK_STAGED", raising=False)
    notebook = tmp_path / "tiny.ipynb"
    _standalone_notebook(notebook, "if x > 5:\n    raise RuntimeError('x too large')")
    folder = results / "smoke" / "tiny"

    def run(x):
        pm.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters={"x": x},
                            kernel_name="python3", progress_bar=False)  # fmt: skip

    run(1)
    saved = {name: (folder / name).read_text() for name in ("X-T1.csv", "parameters.json", "glue.json")}
    assert saved["X-T1.csv"].splitlines()[1].endswith(",1")
    manifest = (results / "smoke" / "manifest.json").read_text()
    with pytest.raises(pm.PapermillExecutionError, match="x too large"):
        run(9)
    assert {name: (folder / name).read_text() for name in saved} == saved, "a failed run replaced results"
    assert (results / "smoke" / "manifest.json").read_text() == manifest
    assert [p.name for p in results.iterdir()] == ["smoke"], "a staging folder was left behind"


def test_warnings_a_kernel_wrote_reach_the_console(tmp_path, capsys):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    nb.cells[0].outputs = [
        nbformat.v4.new_output(
            "stream",
            name="stderr",
            text="/x/cache.py:90: CacheWarning: model.pt: damaged; moved aside\n  warnings.warn(\n",
        ),  # fmt: skip
        nbformat.v4.new_output("stream", name="stdout", text="no Warning here: stdout\n"),
    ]
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    executed.print_warnings(path)
    out = capsys.readouterr().out
    assert "warning: /x/cache.py:90: CacheWarning: model.pt: damaged; moved aside" in out
    assert "stdout" not in out
