import json

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
