"""The Node importance chapter's deeper networks (3 hidden layers, a CNN), on tiny inputs."""

import pandas as pd
import pytest
import torch
from conftest import synthetic_batches, trained_result

from netshrink import cache, data, models, train
from netshrink.compress import search
from netshrink.experiments import deep_importance as di


@pytest.fixture(scope="module")
def mlp3():
    loader = synthetic_batches(n=3)
    torch.manual_seed(0)
    net = models.MLP(in_features=20, hidden=(10, 10, 10))
    train.fit(net, torch.optim.Adam(net.parameters(), lr=0.01), loader, 8, progress=False)
    return trained_result(net, loader), loader


def test_configs_are_the_drafts_networks():
    config = di.mlp3_config("mnist", hidden=(8, 8, 8), batch_size=16, dropout=0.2, precision="bfloat16")
    assert config.model_kwargs == {"hidden": [8, 8, 8], "dropout": 0.2} and config.batch_size == 16
    assert config.precision == "bfloat16" and config.optimizer == "adam"
    conv = di.conv4_config("fashion-mnist", epochs=3)
    assert conv.model == "conv4" and conv.dataset == "fashion-mnist" and conv.epochs == 3


def test_layer_importance_and_counts_cover_every_node(mlp3):
    result, loader = mlp3
    table = di.layer_importance({"16": result, "64": [result, result]}, loader, tol=1e-3)
    assert len(table) == 3 * 3 * 10 and set(table["setting"]) == {"16", "64"}
    assert table.groupby("setting")["network"].nunique().to_dict() == {"16": 1, "64": 2}
    counts = di.layer_counts(table)
    assert (counts[["important", "zero", "worse"]].sum(axis=1) == 10).all()
    assert counts.xs("64", level="setting")["networks"].eq(2).all()
    found = di.setting_findings(table, "batch size", 30)
    assert found.glue["batch_first"] == "16" and found.glue["batch_last"] == "64"
    assert found.glue["batch_important_first"] == found.glue["batch_important_last"]
    assert found.glue["batch_networks"] == 1
    assert found.glue["batch_direction"] == "one network each, so no interval"
    # paired over networks: a share that rises in every network is "more", one that varies is not resolved
    rows = pd.DataFrame(
        {"setting": ["a"] * 3 + ["b"] * 3, "network": [0, 1, 2] * 2, "test acc": 0.9,
         "class": ["zero"] * 3 + ["important"] * 3}
    )  # fmt: skip
    assert (
        di.setting_findings(rows, "batch size", 1).glue["batch_direction"]
        == "more important nodes at batch size b"
    )
    rows.loc[4, "class"] = "zero"
    assert "3 networks resolve" in di.setting_findings(rows, "batch size", 1).glue["batch_direction"]


def test_pruning_hidden_layers_keeps_the_loss_within_the_tolerance(mlp3):
    result, loader = mlp3
    smaller, keeps = search.prune_layers(result.model, loader, tol=1e-3)
    assert list(keeps) == ["hidden.0", "hidden.1", "hidden.2"]
    widths = [smaller.get_submodule(layer).out_features for layer in keeps]
    assert widths == [int(k.sum()) for k in keeps.values()] and all(1 <= w <= 10 for w in widths)
    assert train.evaluate(smaller, loader)["loss"] <= result.test["loss"] + 3 * 1e-3 + 1e-6
    with pytest.raises(ValueError, match=r"layer=.out. is the output layer.*allowed values: hidden.0"):
        search.prune_layers(result.model, loader, tol=1e-3, layers=["hidden.0", "out"])


def test_rewind_rounds_shrink_and_train_both_initialisations(tmp_path, monkeypatch):
    monkeypatch.setenv("NETSHRINK_DATA", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (200,), generator=g)
    x = torch.rand(200, 1, 28, 28, generator=g) * 0.1
    x[torch.arange(200), 0, y, y] = 1.0
    ds = data.ImageDataset(x, y)
    splits = data.DataSplits("mnist", "tiny", tuple("0123456789"), ds, ds, ds, {"n": 200})
    config = di.mlp3_config("mnist", hidden=(12, 12, 12), epochs=2, data_kwargs={"val_size": 200})
    monkeypatch.setattr(cache, "check_splits", lambda *a: None)  # the tiny splits are not a real data set's
    table = di.rewind_rounds(config, splits, data.make_loader(ds, 100), rounds=1, tol=1e-2, progress=False)
    assert list(table.index) == [0, 1] and table["parameters"].iloc[1] <= table["parameters"].iloc[0]
    assert table.loc[0, "importance init"] == table.loc[0, "random init"]
    found = di.rewind_findings(table)
    assert found.glue["rewind_params0"] == table["parameters"].iloc[0] and found.glue["rewind_networks"] == 1
    seeds = di.rewind_seeds(config, splits, data.make_loader(ds, 100), rounds=1, tol=1e-2, seeds=2)
    assert seeds.index.names == ["network", "round"] and len(seeds) == 4
    pd.testing.assert_frame_equal(seeds.xs(0, level="network"), table)  # seed 0 is the run above
    found = di.rewind_findings(seeds)
    last = seeds.xs(1, level="round")
    assert found.glue["rewind_diff"] == pytest.approx(
        100 * (last["importance init"] - last["random init"]).mean()
    )
    assert found.glue["rewind_networks"] == 2
    with pytest.raises(ValueError, match=r"seeds=0 must be an integer >= 1"):
        di.rewind_seeds(config, splits, data.make_loader(ds, 100), rounds=1, tol=1e-2, seeds=0)


def test_a_cnns_channels_by_overall_and_per_class_loss():
    torch.manual_seed(0)
    cnn = models.Conv4Net(widths=(4, 4, 8, 8), hidden=16).eval()
    g = torch.Generator().manual_seed(1)
    ds = data.ImageDataset(torch.rand(60, 1, 28, 28, generator=g), torch.randint(0, 10, (60,), generator=g))
    loader = data.make_loader(ds, 30)
    ablations = di.channel_ablations(cnn, ["conv2", "fc"], loader)
    assert set(ablations) == {"conv2", "fc"} and len(ablations["conv2"].nodes) == 4
    classes = [str(c) for c in range(10)]
    per_class = di.class_accuracy_after_pruning(cnn, ablations, loader, [0.0, 0.5], classes)
    assert len(per_class) == 2 * 2 * 10 and set(per_class["removed"]) == {0, 2, 8}
    intact = per_class[per_class["fraction removed"] == 0.0].groupby("layer")["acc"].mean()
    assert intact["conv2"] == pytest.approx(intact["fc"])  # nothing removed: the same network
    found = di.per_class_findings(per_class)
    assert found.glue["f5_fraction"] == 50.0 and found.glue["f5_layer"] in ("conv2", "fc")
    criteria = di.class_criteria(cnn, ablations, loader, loader, 1e-3, ds.images[:10], repeats=1)
    assert len(criteria) == 1 + 2 * 2 and criteria.index[0] == ("(none)", "original")
    assert (
        criteria["parameters"].iloc[1:] <= criteria["parameters"].iloc[0]
    ).all()  # channels really removed
    pruned = criteria.iloc[1:]
    assert (pruned["channels left"] <= pruned["channels"]).all() and set(pruned["channels"]) == {4, 16}
    found = di.criteria_findings(criteria, "tiny")
    assert found.glue["t5_layers"] == 2 and len(found.compressions) == 4
    assert isinstance(criteria, pd.DataFrame)
