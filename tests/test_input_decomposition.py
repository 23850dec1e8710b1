"""The input images as features (drafts 001 and 002): CP and Tucker loadings, classifiers, the cases."""

import pandas as pd
import pytest
import torch

from netshrink import data
from netshrink.book import plots
from netshrink.experiments import input_decomposition as inp


def low_rank_images(n=60, rank=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b, c = (torch.rand(d, rank, generator=g) for d in (n, 12, 10))
    return torch.einsum("nr,hr,wr->nhw", a, b, c)


def test_input_table_puts_the_draft_beside_ours():
    images = low_rank_images(n=90)
    labels = torch.arange(90) % 3
    ds = data.ImageDataset(images.unsqueeze(1), labels)
    splits = data.DataSplits("mnist", "tiny", ("a", "b", "c"), ds, ds, ds, {})
    run = inp.input_experiment(splits, "cp", [3], hidden_full=3, hidden_decomposed=5, epochs=1)
    table = inp.input_table(run, {"full data": (784, 3, 3145, 0.98)})
    assert list(table.columns) == ["full data", "CP rank 3", "full data (draft)"]
    assert table.loc["parameters", "CP rank 3"] == 3 * 5 + 5 + 5 * 3 + 3
    assert table.loc["parameters", "full data"] == 120 * 3 + 3 + 3 * 3 + 3
    assert isinstance(table, pd.DataFrame) and table.loc["test accuracy", "full data (draft)"] == 0.98
    assert table.loc["test accuracy"].between(0, 1).all(), "a fraction, shown in % by tables.readable"
    assert table.loc["seeds", "full data"] == 1 and table.loc[list(inp.ACCURACY_ROWS[1:])].isna().all().all()


def test_several_seeds_give_the_mean_and_the_range_one_more_seed_would_take():
    images = low_rank_images(n=90)
    labels = torch.arange(90) % 3
    ds = data.ImageDataset(images.unsqueeze(1), labels)
    splits = data.DataSplits("mnist", "tiny", ("a", "b", "c"), ds, ds, ds, {})
    run = inp.input_experiment(
        splits, "cp", [3], hidden_full=3, hidden_decomposed=5, epochs=1, seed=4, seeds=3
    )
    one = inp.input_experiment(splits, "cp", [3], hidden_full=3, hidden_decomposed=5, epochs=1, seed=4)
    full = run.classifiers[0]
    assert len(full.seed_accs) == 3 and full.seed_accs[0] == full.test_acc == one.classifiers[0].test_acc
    assert torch.equal(full.predictions, one.classifiers[0].predictions), (
        "the first seed's classifier is kept"
    )
    table = inp.input_table(run)
    mean, low, high = (table.loc[row, "full data"] for row in inp.ACCURACY_ROWS)
    assert mean == pytest.approx(sum(full.seed_accs) / 3) and table.loc["seeds", "full data"] == 3
    spread = max(full.seed_accs) - min(full.seed_accs)
    assert low <= mean <= high and (spread == 0 or low < min(full.seed_accs))
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"seeds={bad!r}"):
            inp.input_experiment(splits, "cp", [3], hidden_full=3, hidden_decomposed=5, epochs=1, seeds=bad)


def test_input_case_and_tucker_input_on_real_digits():
    case = inp.input_case("D-T1", val_size=100, train_size=300, epochs=1)
    assert case.name == "digits 3, 4, 7" and case.rank == 3 and case.splits.classes == ("3", "4", "7")
    assert list(case.table.columns) == ["full data", "CP rank 3", "full data (draft)", "CP rank 3 (draft)"]
    assert [c["draft"] for c in case.findings.comparisons] == [0.98, 0.83]
    assert case.findings.comparisons[1]["ours"] == case.experiment.classifiers[1].test_acc, "one seed"
    assert "spread" not in case.findings.comparisons[1], "no range from one seed"
    seeded = inp.input_case("D-T2", val_size=100, train_size=300, epochs=1, seeds=2)
    row = seeded.findings.comparisons[1]
    assert row["ours"] == pytest.approx(sum(seeded.experiment.classifiers[1].seed_accs) / 2)
    assert row["spread"] >= 0 and row["spread_what"] == "95 % range of one classifier over our 2 seeds"
    assert case.findings.glue["dt1_dec"] == 100 * case.table.loc["test accuracy", "CP rank 3"], (
        "the prose's %"
    )
    grid, histograms = plots.input_case_figures(case)
    assert len(grid.axes) >= 50 and len(histograms.axes) >= 3
    with pytest.raises(ValueError, match="item='D-T9' is not an input case; allowed: D-T1, D-T2, D-T3"):
        inp.input_case("D-T9", val_size=100, train_size=300, epochs=1)
    splits = data.load_dataset("mnist", val_size=100, train_size=300, test_size=200)
    table, found = inp.tucker_input(splits, [15], epochs=1)
    assert list(table.columns) == [
        "full data",
        "Tucker rank 15",
        "full data (draft)",
        "Tucker rank 15 (draft)",
    ]
    assert found.glue["dt4_first"] == 100 * table.loc["test accuracy", "Tucker rank 15"]
    assert found.glue["dt4_first_rank"] == 15 and [c["draft"] for c in found.comparisons] == [0.70, 0.93]


def test_train_classifier_learns_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (150,), generator=g)
    x = torch.randn(150, 6, generator=g)
    x[torch.arange(150), y] += 4.0
    clf = inp.train_classifier("toy", (x[:100], y[:100]), (x[100:], y[100:]), 8, 3, epochs=30, lr=0.01)
    assert clf.label == "toy" and clf.inputs == 6 and clf.parameters == 6 * 8 + 8 + 8 * 3 + 3
    assert clf.test_acc > 0.8 and clf.predictions.shape == (50,)


def test_a_chapters_classifiers_trained_outside_the_cache_reach_its_models_json(results_dir):
    import json

    from netshrink.book import chapter, chapters

    ch = chapters.TENSOR_DECOMPOSITION
    run = ch.start({**ch.parameters("smoke"), "device": "cpu"}, display=False)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    inp.train_classifier("toy features", (x, y), (x, y), 4, 3, epochs=2)
    rows = json.loads((run.report.dir / chapter.MODELS_RECORD).read_text())
    assert [(r["model"], r["key"], r["from cache"]) for r in rows] == [("MLP on toy features", None, False)]
    assert rows[0]["training seconds"] >= 0
