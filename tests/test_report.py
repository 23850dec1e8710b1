import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from netshrink import io  # noqa: E402
from netshrink.book import report  # noqa: E402


def make(results_dir, chapter="demo", profile="smoke"):
    return report.Report(chapter, profile, {"epochs": 2}, root=results_dir, display=False)


def test_table_figure_text_and_glue_are_written_and_recorded(results_dir):
    rep = make(results_dir)
    df = pd.DataFrame({"acc": [0.9, 0.8]}, index=["a", "b"])
    rep.table("X-T1", df, "a table")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    rep.figure("X-F1", fig, "a figure", name="curves")
    rep.text("X-L1", "Net(...)", "a listing")
    rep.glue("acc_a", 90.0)
    folder = results_dir / "smoke" / "demo"
    assert pd.read_csv(folder / "X-T1.csv", index_col=0).equals(df)
    assert (folder / "X-F1-curves.png").stat().st_size > 1000
    assert (folder / "X-F1-curves.svg").read_text().lstrip().startswith("<?xml")
    assert json.loads((folder / "glue.json").read_text()) == {"acc_a": 90.0}
    assert json.loads((folder / "parameters.json").read_text())["epochs"] == 2
    manifest = report.read_manifest("smoke", results_dir)
    assert manifest["items"]["X-F1"]["files"] == ["demo/X-F1-curves.png", "demo/X-F1-curves.svg"]
    assert manifest["items"]["X-T1"]["params"] == {"epochs": 2}
    assert manifest["items"]["X-L1"]["kind"] == "listing"
    assert not list(results_dir.rglob("*.tmp*"))


def test_rerunning_a_chapter_forgets_only_its_own_items(results_dir):
    make(results_dir, "one").table("A-T1", pd.DataFrame({"x": [1]}), "t")
    make(results_dir, "two").table("B-T1", pd.DataFrame({"x": [1]}), "t")
    make(results_dir, "one")
    items = report.read_manifest("smoke", results_dir)["items"]
    assert set(items) == {"B-T1"}


@pytest.mark.parametrize("bad", ["B_T1", "table", "b-t1"])
def test_bad_item_id_is_refused(results_dir, bad):
    with pytest.raises(ValueError, match="item="):
        make(results_dir).table(bad, pd.DataFrame({"x": [1]}), "t")


def test_unknown_profile_is_refused(results_dir):
    with pytest.raises(ValueError, match="profile='fast' is not known; allowed values: smoke, quick, full"):
        report.Report("demo", "fast", {}, root=results_dir)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_findings_are_glued_compared_and_recorded_in_one_call(results_dir):
    rep = make(results_dir)
    table = pd.DataFrame(
        {"parameters": [100, 40], "MFLOPs": [2.0, 1.0], "test acc": [0.9, 0.85], "speedup": [1.0, 1.8]},
        index=["original", "pruned"],
    )
    fraction = {"mflops": "MFLOPs", "accuracy": "test acc"}
    rows = report.compression_rows(
        "X-T1", table, data_set="MNIST", model="MLP, {row}", how="by {row}", **fraction
    )
    assert rows == [{"item": "X-T1", "model": "MLP, pruned", "data_set": "MNIST", "parameters": 40,
                     "base_parameters": 100, "mflops": 1.0, "base_mflops": 2.0, "accuracy": 0.85,
                     "base_accuracy": 0.9, "speedup": 1.8, "how": "by pruned"}]  # fmt: skip
    named = table.rename(columns={"test acc": "test accuracy", "MFLOPs": "MFLOPs per image"})
    assert report.compression_rows("X-T1", named, data_set="M", model="m", how="h")[0]["accuracy"] == 0.85
    marked = report.compression_rows("X-T1", named, data_set="M", model="m", how="h", method="lib, {row}")
    assert marked[0]["method"] == "lib, pruned" and "method" not in rows[0], "a marker of its own when named"
    with pytest.raises(
        ValueError, match=r"table has no column 'MFLOPs per image'; its columns: parameters, MFLOPs"
    ):
        report.compression_rows("X-T1", table, data_set="M", model="m", how="h")  # no guessing
    compare = {"item": "X-T1", "quantity": "acc", "ours": 0.85, "draft": 0.8, "source": "draft 004"}
    found = report.Findings({"a": 1}, [compare]) + report.Findings({"b": 2.5}, compressions=rows)
    rep.record(found)
    rep.record({"c": "text"})
    assert json.loads((results_dir / "smoke" / "demo" / "glue.json").read_text()) == {
        "a": 1,
        "b": 2.5,
        "c": "text",
    }
    manifest = report.read_manifest("smoke", results_dir)
    assert manifest["comparisons"]["demo"][0]["draft"] == 0.8
    assert "spread" not in manifest["comparisons"]["demo"][0], "a spread is recorded only when given"
    rep.compare("X-T1", "acc over seeds", 0.85, 0.8, "draft 004", spread=0.01, draft_spread=0.02)
    row = report.read_manifest("smoke", results_dir)["comparisons"]["demo"][-1]
    assert (row["spread"], row["draft_spread"]) == (0.01, 0.02)
    with pytest.raises(ValueError, match="spread=-0.1 must be a half-width >= 0"):
        rep.compare("X-T1", "acc", 0.85, 0.8, "draft 004", spread=-0.1)
    assert manifest["compression"]["demo"][0]["model"] == "MLP, pruned"
    assert "method" not in manifest["compression"]["demo"][0], "a method is recorded only when named"
    rep.record(report.Findings({}, compressions=marked))
    assert report.read_manifest("smoke", results_dir)["compression"]["demo"][-1]["method"] == "lib, pruned"


def test_check_profile_and_publish_swap_a_chapters_results_in_whole(tmp_path):
    assert report.check_profile("quick") == "quick"
    with pytest.raises(ValueError, match="profile='fast' is not known; allowed values: smoke, quick, full"):
        report.check_profile("fast")
    root, staging = tmp_path / "results", tmp_path / "staging"
    old = report.Report("demo", "smoke", {}, root=root, display=False)
    old.table("X-T1", pd.DataFrame({"a": [1]}), "old")
    old.table("X-T2", pd.DataFrame({"a": [1]}), "gone in the new run")
    new = report.Report("demo", "smoke", {}, root=staging, display=False)
    new.table("X-T1", pd.DataFrame({"a": [2]}), "new")
    report.publish("demo", "smoke", staging, root=root)
    assert pd.read_csv(root / "smoke" / "demo" / "X-T1.csv")["a"].tolist() == [2]
    assert not (root / "smoke" / "demo" / "X-T2.csv").exists()
    assert set(report.read_manifest("smoke", root)["items"]) == {"X-T1"}
    with pytest.raises(FileNotFoundError, match="the run of chapter 'other' wrote no results"):
        report.publish("other", "smoke", staging, root=root)


def _old_and_new(tmp_path):
    """A results root whose chapter 'demo' holds a good table (a = 1), and a run's staging root
    with a new one (a = 2)."""
    root, staging = tmp_path / "results", tmp_path / "staging"
    for where, a, caption in ((root, 1, "old"), (staging, 2, "new")):
        report.Report("demo", "smoke", {}, root=where, display=False).table(
            "X-T1", pd.DataFrame({"a": [a]}), caption
        )
    return root, staging


def _table(root):
    return pd.read_csv(root / "smoke" / "demo" / "X-T1.csv")["a"].tolist()


class Crash(BaseException):
    """A process killed between two steps (no `except Exception` sees it)."""


@pytest.mark.parametrize("crash_at", [1, 2], ids=["after the first rename", "after the second rename"])
def test_a_crash_during_publish_is_completed_or_rolled_back_never_lost(tmp_path, monkeypatch, crash_at):
    root, staging = _old_and_new(tmp_path)
    renames, real_rename = [], Path.rename

    def rename(self, target):
        out = real_rename(self, target)
        renames.append(target)
        if len(renames) == crash_at:
            raise Crash
        return out

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(Crash):
        report.publish("demo", "smoke", staging, root=root)
    monkeypatch.setattr(Path, "rename", real_rename)
    assert report.recover(root, "smoke") == ["demo"]
    # crashed between the renames: the old results come back; after both: the swap completes
    assert _table(root) == ([1] if crash_at == 1 else [2])
    captions = report.read_manifest("smoke", root)["items"]["X-T1"]["captions"]
    assert captions == (["old"] if crash_at == 1 else ["new"])
    assert sorted(p.name for p in (root / "smoke").iterdir()) == ["demo", "manifest.json", "manifest.lock"]


def test_a_manifest_that_cannot_be_written_rolls_the_swap_back(tmp_path, monkeypatch):
    root, staging = _old_and_new(tmp_path)
    real_write = report.write_json

    def write_json(path, obj):
        if Path(path).name == "manifest.json":
            raise PermissionError(13, "Permission denied", str(path))
        real_write(path, obj)

    monkeypatch.setattr(report, "write_json", write_json)
    with pytest.raises(OSError, match=r"could not write .*manifest.json .*'demo' keeps its last results"):
        report.publish("demo", "smoke", staging, root=root)
    assert _table(root) == [1] and (staging / "smoke" / "demo").is_dir()
    assert report.read_manifest("smoke", root)["items"]["X-T1"]["captions"] == ["old"]
    assert not list((root / "smoke").glob(".*")), "no journal or parked folder is left"


def test_withdraw_removes_only_that_chapters_folder_and_manifest_entries(tmp_path):
    root = tmp_path / "results"
    for chapter, item in (("demo", "X-T1"), ("other", "Y-T1")):
        made = report.Report(chapter, "smoke", {}, root=root, display=False)
        made.table(item, pd.DataFrame({"a": [1]}), "t")
    report.withdraw("demo", "smoke", root)
    assert not (root / "smoke" / "demo").exists() and (root / "smoke" / "other" / "Y-T1.csv").is_file()
    assert set(report.read_manifest("smoke", root)["items"]) == {"Y-T1"}
    assert not list((root / "smoke").glob(".demo*")), "no parked folder is left behind"


def test_a_withdraw_cut_short_never_leaves_an_entry_whose_folder_is_gone(tmp_path, monkeypatch):
    root = tmp_path / "results"
    made = report.Report("demo", "smoke", {}, root=root, display=False)
    made.table("X-T1", pd.DataFrame({"a": [1]}), "t")

    def crash(*args, **kwargs):
        raise OSError("cut short")

    monkeypatch.setattr(Path, "rename", crash)  # the crash comes when the folder is moved aside
    with pytest.raises(OSError, match="cut short"):
        report.withdraw("demo", "smoke", root)
    assert report.read_manifest("smoke", root)["items"] == {}  # the manifest went first


def test_a_name_glued_twice_with_one_value_is_one_glue_key(results_dir, monkeypatch):
    glued = []
    monkeypatch.setattr(report, "glue", lambda name, value, display=False: glued.append((name, value)))
    rep = make(results_dir)
    rep.record({"first_n": 1, "a_mnist": 2.0})
    rep.record({"first_n": 1, "a_fashion": 3.0})  # the second data set's findings share first_n
    assert [n for n, _ in glued] == ["first_n", "a_mnist", "a_fashion"]
    rep.glue("first_n", 2)  # a changed value (a cell run again by hand) is glued again
    assert (
        glued[-1] == ("first_n", 2)
        and json.loads((results_dir / "smoke" / "demo" / "glue.json").read_text())["first_n"] == 2
    )
