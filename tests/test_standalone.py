"""Issue 41, items 1 and 14: a chapter run outside the runner publishes only when the notebook's
last cell ran, and never leaves the runner's `models.json` among its results."""

import atexit
import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from netshrink.book import report, standalone
from netshrink.io import write_json


def _notebook(path, chapter_notebook):
    start = (
        "import pandas as pd\nfrom netshrink.book.chapter import Chapter\n"
        f"tiny = Chapter('tiny', {str(chapter_notebook)!r}, 'Tiny', ('X-T1', 'X-T2'), "
        "{p: {'x': 2} for p in ('smoke', 'quick', 'full')})\n"
        "run = tiny.start(globals(), display=False)\n"
        "run.report.table('X-T1', pd.DataFrame({'a': [x]}), 'x itself')"
    )
    params = "profile = 'smoke'\nx = 1\ndevice = 'cpu'\nprecision = 'auto'"
    cells = [
        nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(start),
        nbformat.v4.new_code_cell("y = x + 1"),
        nbformat.v4.new_code_cell(
            "run.report.table('X-T2', pd.DataFrame({'b': [y]}), 'y')\nrun.report.glue('y', y)"
        ),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return nb


def _run_cells(nb, n, tmp_path):
    """Run the first `n` cells in a kernel, then shut it down as Jupyter does (graceful)."""
    client = NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells[:n]):
            client.execute_cell(cell, index)


def test_a_kernel_shut_down_before_the_last_cell_publishes_nothing(tmp_path, monkeypatch):
    """Item 1: results/smoke/random_pruning went from 22 files to 3 when a kernel whose first
    cells succeeded was shut down."""
    results = tmp_path / "results"
    monkeypatch.setenv("NETSHRINK_RESULTS", str(results))
    monkeypatch.delenv("NETSHRINK_STAGED", raising=False)
    path = tmp_path / "tiny.ipynb"
    nb = _notebook(path, path)
    _run_cells(nb, 4, tmp_path)  # the whole notebook: published
    folder = results / "smoke" / "tiny"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert {"X-T1.csv", "X-T2.csv", "glue.json", "parameters.json"} <= set(before)
    manifest = (results / "smoke" / "manifest.json").read_text()
    for n in (2, 3):  # the first cells succeed, then the kernel is shut down
        nb = _notebook(path, path)
        nb.cells[0].source = "profile = 'smoke'\nx = 7\ndevice = 'cpu'\nprecision = 'auto'"
        _run_cells(nb, n, tmp_path)
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, f"published after {n} cells"
        assert (results / "smoke" / "manifest.json").read_text() == manifest
    assert sorted(p.name for p in results.iterdir()) == ["smoke"], "a staging folder was left behind"


def _finish(tmp_path, items=("X-T1",), ok=True):
    staging, results = tmp_path / "staging", tmp_path / "results"
    folder = staging / "smoke" / "tiny"
    folder.mkdir(parents=True)
    (folder / "X-T1.csv").write_text("a\n1\n")
    write_json(folder / "models.json", [{"key": "k", "from cache": False}])
    write_json(
        staging / "smoke" / "manifest.json", {"profile": "smoke", "items": {"X-T1": {"chapter": "tiny"}}}
    )
    hook = sys.excepthook
    publisher = standalone.PublishAtExit("tiny", "smoke", staging, results, items=items)
    sys.excepthook = hook
    atexit.unregister(publisher.finish)
    publisher.ok = ok
    publisher.finish()
    return results / "smoke" / "tiny"


def test_a_standalone_publish_leaves_no_models_json(tmp_path):
    """Item 14: models.json, the runner's input for the provenance, stayed in the results."""
    folder = _finish(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["X-T1.csv"]
    assert report.read_manifest("smoke", tmp_path / "results")["items"] == {"X-T1": {"chapter": "tiny"}}


@pytest.mark.parametrize(
    ("items", "ok", "said"),
    [(("X-T1", "X-T9"), True, "it made no X-T9"), (("X-T1",), False, "its last cell")],
)
def test_a_run_that_missed_an_item_or_its_last_cell_is_not_published(tmp_path, capsys, items, ok, said):
    folder = _finish(tmp_path, items, ok)
    assert not folder.exists() and not (tmp_path / "staging").exists()
    err = capsys.readouterr().err
    assert f"chapter 'tiny' (smoke) not published: {said}" in err and err.count("\n") == 1
    assert json.loads(json.dumps(report.read_manifest("smoke", tmp_path / "results")))["items"] == {}
