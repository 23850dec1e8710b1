"""Every chapter, run end to end by papermill in the smoke profile, then the book built from it."""

import json
import math
import os

import pandas as pd
import pytest
import torch

from netshrink.book import chapters, report
from netshrink.experiments import random_shrink as rs

pytestmark = pytest.mark.chapter


@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_chapter_produces_every_item(smoke_run, chapter):
    results, executed = smoke_run
    assert executed[chapter.name].is_file()
    items = report.read_manifest("smoke", results)["items"]
    missing = [i for i in chapter.items if i not in items]
    assert not missing, f"{chapter.name} did not produce {missing}"
    for item in chapter.items:
        entry = items[item]
        assert entry["chapter"] == chapter.name and entry["params"]["profile"] == "smoke"
        for rel in entry["files"]:
            path = results / "smoke" / rel
            assert path.is_file() and path.stat().st_size > 0, path
        if entry["kind"] == "figure":
            assert {p.rsplit(".", 1)[1] for p in entry["files"]} >= {"png", "svg"}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_chapter_runs_on_cuda(chapter, tmp_path):
    from netshrink.book import runner

    runner.run_chapter(chapter, "smoke", results=tmp_path, overrides={"device": "cuda"}, progress=False)
    items = report.read_manifest("smoke", tmp_path)["items"]
    assert all(i in items for i in chapter.items)
    params = json.loads((tmp_path / "smoke" / chapter.name / "parameters.json").read_text())
    assert params["device"] == "cuda" and "cuda:" in params["computed on"]


def test_baselines_are_sane(smoke_run):
    results, _ = smoke_run
    table = pd.read_csv(results / "smoke" / "baselines" / "B-T1.csv", index_col=0)
    assert len(table) == 10
    acc = table["test acc (ours)"]
    assert acc.between(0, 1).all()
    # the runs the drafts expect to learn do learn, even on the smoke subsets (chance: 0.1)
    assert (acc[["mlp", "one_conv", "two_conv"]] > 0.5).all(), acc
    assert (acc[["cnn_lr0.001", "cnn_pool"]] > 0.15).all(), acc
    assert table.loc["two_conv", "parameters"] > 0
    assert table.loc["two_conv", "draft's test acc"] == pytest.approx(0.971)
    glued = json.loads((results / "smoke" / "baselines" / "glue.json").read_text())
    assert glued["cifar_label"].startswith("CIFAR-10")
    accs = {k: v for k, v in glued.items() if k.startswith("acc_")}
    assert len(accs) == 10 and all(math.isfinite(v) and 0 <= v <= 100 for v in accs.values())


@pytest.mark.book
def test_plain_jupyter_book_build_makes_the_same_book(smoke_run, tmp_path, project_root):
    """`jupyter-book build .` (no runner): the extension shows the executed chapters too."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    results, _ = smoke_run
    for name in ("_config.yml", "_toc.yml", "book", "chapters"):
        src = project_root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    env = {**os.environ, "NETSHRINK_RESULTS": str(results), "NETSHRINK_BOOK_PROFILE": "smoke"}
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", "."], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "No key" not in proc.stdout + proc.stderr, "a glued number was not found"
    page = (tmp_path / "_build" / "html" / "chapters" / "02_random_pruning.html").read_text()
    assert "The numbers on this page were made by the" in page and page.count("<img") >= 4


@pytest.mark.book
def test_book_builds_from_the_smoke_run(smoke_book):
    html, proc = smoke_book
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" in line]
    assert not warnings, "Sphinx warnings:\n" + "\n".join(warnings)
    page = (html / "chapters" / "01_baselines.html").read_text()
    assert "B-T1" in page and page.count("<img") >= 7
    assert "acc_two_conv" not in page, "a glued number was not replaced"
    assert (html / "book" / "references.html").read_text().count("Novikov") >= 1
    assert (html / "index.html").is_file()
    glance = (html / "book" / "glance.html").read_text()
    assert "0.9724" in glance and "Every compressed model" in glance
    assert "Where the numbers come from" in glance and glance.count("smoke</span></code>") >= 5
    assert "```" not in glance and "{table}" not in glance, "a table directive was left as text"
    for item in ("D-F8", "D-F9", "V-F1"):  # a table and a figure both: the figure is shown too
        assert f"{item}.png" in glance, item
    rerun = (html / "book" / "rerun.html").read_text()
    assert "n_trials" in rerun and "smoke" in rerun
    for chapter in chapters.CHAPTERS.values():  # each page says what made its numbers
        page = (html / chapter.notebook.replace(".ipynb", ".html")).read_text()
        assert "The numbers on this page were made by the" in page and "smoke" in page and "at commit" in page


def test_random_pruning_is_sane(smoke_run):
    results, _ = smoke_run
    folder = results / "smoke" / "random_pruning"
    acc = pd.read_csv(folder / "R-T1.csv", index_col=[0, 1])
    loss = pd.read_csv(folder / "R-T2.csv", index_col=[0, 1])
    ours_acc, ours_loss = acc.xs("ours", level="source"), loss.xs("ours", level="source")
    assert ours_acc.loc["mean"].between(0.2, 1).all(), "well above chance (0.1) after removing nodes"
    assert ours_loss.map(math.isfinite).all().all() and (ours_loss > 0).all().all()
    # removing more nodes costs more, on average
    assert ours_acc.loc["mean"].iloc[0] >= ours_acc.loc["mean"].iloc[-1]
    assert acc.xs("draft 004", level="source").loc["mean", "64"] == pytest.approx(0.8485)
    spread = pd.read_csv(folder / "R-S1-mnist.csv", index_col=0)
    assert (spread["ci95 low"] <= spread["mean"]).all() and (spread["mean"] <= spread["ci95 high"]).all()
    for ds, draft_mean_at_8 in (("mnist", 2.4), ("fashion-mnist", 5.6)):  # draft Tables 3.3 and 3.6
        shrink = pd.read_csv(folder / f"R-S4-{ds}.csv", index_col=[0, 1])
        assert set(shrink.index.get_level_values("reading")) == {"draft", "validation loss"}
        assert (shrink["removed"] >= 0).all() and shrink["test_acc"].between(0, 1).all()
        for stem in (rs.reading_stem(ds, "draft"), rs.reading_stem(ds, "validation loss")):
            table = pd.read_csv(folder / f"{stem}.csv", index_col=[0, 1])
            assert table.loc[("mean", "draft 004"), "8"] == pytest.approx(draft_mean_at_8)
            ours = table.xs("ours", level="source")
            assert ours.loc["ci95 low"].le(ours.loc["mean over networks"]).all()
    bench = pd.read_csv(folder / "R-B1.csv", index_col=0)
    assert bench["agree"].all() and bench.loc["batched", "speedup"] > 1
    assert (bench["q25"] <= bench["seconds"]).all() and (bench["seconds"] <= bench["q75"]).all()
    init = pd.read_csv(folder / "R-S2.csv", index_col=0)
    accuracies = init["mean"].drop(["paired difference", "draft 004"])
    assert init.loc["draft 004", "mean"] == pytest.approx(0.7394) and accuracies.between(0.1, 1).all()
    paired = init.loc["paired difference"]  # Keras minus PyTorch, network by network
    assert paired["ci95 low"] <= paired["mean"] <= paired["ci95 high"] and abs(paired["mean"]) < 1
    assert paired["mean"] == pytest.approx(init["mean"].iloc[1] - init["mean"].iloc[0])


def test_node_importance_is_sane(smoke_run):
    results, _ = smoke_run
    folder = results / "smoke" / "node_importance"
    counts = pd.read_csv(folder / "I-T1.csv", index_col=[0, 1])
    n_nodes = counts.loc[("MNIST", "mean"), ["important", "zero", "worse"]].sum()
    assert n_nodes == pytest.approx(128), "every node is in one class"
    for ds in ("mnist", "fashion-mnist"):
        table = pd.read_csv(folder / f"I-T2-{ds}.csv", index_col=0)
        assert table.loc["original", "nodes left"] == 128
        assert (table["nodes left"] <= 128).all() and (
            table["parameters"] <= table.loc["original", "parameters"]
        ).all()
        assert table.loc["exhaustive, width a multiple of 16", "nodes left"] % 16 == 0
        assert table["test acc"].between(0.2, 1).all() and (table["ms per batch"] > 0).all()
        greedy = pd.read_csv(folder / f"I-T3-{ds}.csv", index_col=0)
        assert greedy.loc["greedy", "loss evaluations"] > 0
        # recomputed pruning never raises the validation loss
        assert table.loc["exhaustive", "val loss"] <= table.loc["original", "val loss"] + 1e-9
    bench = pd.read_csv(folder / "I-B1.csv", index_col=0)
    assert bench["agree"].all() and bench.loc["batched", "speedup"] > 1
    rewind = pd.read_csv(folder / "I-T4.csv", index_col=0)
    assert rewind["parameters"].is_monotonic_decreasing
    criteria = pd.read_csv(folder / "I-T5.csv", index_col=[0, 1])
    per_class = criteria.xs("every class's loss", level="criterion")
    assert (per_class["test acc"] > 0.1).all()


def test_tensor_decomposition_is_sane(smoke_run):
    results, _ = smoke_run
    folder = results / "smoke" / "tensor_decomposition"
    t1 = pd.read_csv(folder / "D-T1.csv", index_col=0)
    assert t1.loc["inputs", "CP rank 3"] == 3 and t1.loc["inputs", "full data"] == 784
    assert t1.loc["test accuracy", "full data"] > 1 / 3, "above chance for three digits (a fraction)"
    assert 0 <= t1.loc["test accuracy", "CP rank 3"] <= 1, "a fraction (smoke's 2 epochs may sit at chance)"
    assert t1.loc["parameters", "full data (draft)"] == 3145
    t5 = pd.read_csv(folder / "D-T5.csv", index_col=0)
    assert t5.loc["original", "parameters"] == 120_382
    assert (t5["parameters"].iloc[1:] < 120_382 / 2).all()
    assert t5.loc["draft's plan, fine-tuned", "parameters"] == 120_382 - (416 + 12_832 + 96_120 + 10_164) + (
        50 + 48 + 128 + 800 + 160 + 32_000 + 4_800 + 14_520 + 3_600 + 2_604
    )
    assert (t5["seconds"] > 0).all(), "plain units: seconds, the images counted in the caption"
    assert t5[["test accuracy", "accuracy before fine-tuning"]].stack().between(0, 1).all(), "fractions"
    listing = (folder / "D-L1-after.txt").read_text()
    assert "Sequential" in listing and "(l1): Sequential" in listing
    t6 = pd.read_csv(folder / "D-T6.csv", index_col=0)
    assert t6.loc["k = 2", "parameters"] < t6.loc["k = 4", "parameters"] < t6.loc["original", "parameters"]
    assert t6.loc["k = 8", "test accuracy"] == pytest.approx(t6.loc["original", "test accuracy"], abs=0.005)
    # like for like: the draft's numbers stand beside the row of its own plan, and its 88.02 % at
    # k = 4 (no fine-tuning said) beside our k = 4 before fine-tuning
    compared = json.loads((results / "smoke" / "manifest.json").read_text())["comparisons"]
    rows = {r["quantity"]: r for r in compared["tensor_decomposition"]}
    params = rows["week-6 network, the draft's plan: parameters"]
    assert params["ours"] == t5.loc["draft's plan, fine-tuned", "parameters"] and params["draft"] == 59_560
    k_ref = next(q for q in rows if q.endswith(", no fine-tuning")).split("k = ")[1].split(",")[0]
    before = rows[f"CIFAR-10 CNN: test accuracy at k = {k_ref}, no fine-tuning"]
    assert before["ours"] == pytest.approx(t6.loc[f"k = {k_ref}", "test accuracy"])
    assert before["draft"] == pytest.approx(0.8802)
    f9 = pd.read_csv(folder / "D-F9.csv", index_col=0)
    assert (f9.loc[64] < 1e-5).all() and (f9.loc[1] > f9.loc[8]).all()
    t7 = pd.read_csv(folder / "D-T7.csv", index_col=0)
    assert set(t7.index) == {"original", "cp", "tucker2", "tt", "jaderberg", "btd"}
    budget = t7["decomposed layers' parameters"]
    assert (budget.iloc[1:] <= 0.25 * budget["original"]).all() and (
        budget.iloc[1:] > 0.1 * budget["original"]
    ).all()
