"""The Tensor decomposition chapter's building blocks: image features, plans, caches, timing."""

import pandas as pd
import pytest
import torch
from torch import nn

from netshrink import cache, data, measure, models
from netshrink.compress import decompose, input_features
from netshrink.experiments import cifar_decomposition as cd
from netshrink.experiments import input_decomposition as inp
from netshrink.experiments import tensor_decomposition as td


def low_rank_images(n=60, rank=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b, c = (torch.rand(d, rank, generator=g) for d in (n, 12, 10))
    return torch.einsum("nr,hr,wr->nhw", a, b, c)


@pytest.mark.parametrize("method", input_features.METHODS)
def test_image_decomposition_fits_and_projects_training_images_onto_their_loadings(method):
    images = low_rank_images()
    basis = input_features.decompose_images(images, method, 3)
    assert basis.basis.shape == (3, 120) and basis.loadings.shape == (60, 3)
    assert basis.relative_error < 1e-3, "a rank-3 tensor is fitted exactly at rank 3"
    projected = input_features.project(images.unsqueeze(1), basis)
    assert (projected - basis.loadings).norm() / basis.loadings.norm() < 1e-2


def test_image_decomposition_refuses_bad_input():
    images = low_rank_images()
    with pytest.raises(ValueError, match=r"method='pca' is not known; allowed values: cp, tucker"):
        input_features.decompose_images(images, "pca", 3)
    with pytest.raises(ValueError, match=r"rank=0 is out of range; allowed: integers 1..60"):
        input_features.decompose_images(images, "cp", 0)
    with pytest.raises(ValueError, match=r"images have shape \(60, 120\)"):
        input_features.decompose_images(images.flatten(1), "cp", 3)


def test_standardised_training_features_have_zero_mean_and_unit_deviation():
    train_x, test_x = torch.randn(100, 4) * 0.01 + 5, torch.randn(20, 4)
    a, b = input_features.standardise(train_x, test_x)
    assert torch.allclose(a.mean(0), torch.zeros(4), atol=1e-4) and torch.allclose(a.std(0), torch.ones(4))
    assert b.shape == test_x.shape


def test_k_plan_keeps_k_eighths_of_each_dimension_and_full_rank_is_exact():
    torch.manual_seed(0)
    net = models.CifarCNN(pool=True).eval()
    layers = cd.conv_layers(net)
    assert layers == ["features.0", "features.2", "features.5", "features.7"]
    plan = cd.k_plan(net, 4, layers)
    assert plan["features.0"] == ["tucker2", [2, 16]] and plan["features.7"] == ["tucker2", [32, 32]]
    x = torch.rand(2, 3, 32, 32)
    full = decompose.decompose_model(net, cd.k_plan(net, 8, layers))
    assert torch.allclose(full(x), net(x), atol=1e-4)
    with pytest.raises(ValueError, match=r"k=9 is out of range; allowed: 1..8"):
        cd.k_plan(net, 9, layers)


def test_reconstruction_error_falls_with_rank_and_vanishes_at_full_rank():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3)
    curves = cd.reconstruction_curves(conv, [1, 4, 8, 16, 24])
    for _, group in curves.groupby("varied"):
        assert group["relative error"].is_monotonic_decreasing
    assert curves[curves["rank"] == 16]["relative error"].min() < 1e-5
    assert set(curves["varied"]) == {"R2 varied, R1 = 16", "R1 varied, R2 = 24"}


@pytest.mark.parametrize("method", ["cp", "tucker2", "tt", "jaderberg", "btd"])
def test_budget_plans_keep_the_budget(method):
    net = models.CifarCNN(pool=True)
    names = ["features.2", "features.5", "features.7"]
    plan = cd.budget_plan(net, method, names, 0.25)
    new = decompose.decompose_model(net, plan)
    for name in names:
        assert models.count_parameters(new.get_submodule(name)) <= 0.25 * models.count_parameters(
            net.get_submodule(name)
        )
    assert cd.layers_parameters(new, names) < cd.layers_parameters(net, names) / 4
    with pytest.raises(ValueError, match=r"fraction=1.5 is out of range; allowed: \(0, 1\)"):
        cd.budget_plan(net, method, names, 1.5)


def test_time_images_times_every_model_in_both_layouts():
    torch.manual_seed(0)
    named = {"a": models.LeNet(), "b": decompose.decompose_model(models.LeNet(), {"l1": ["tucker1", 8]})}
    images = torch.rand(64, 1, 28, 28)
    for channels_last in (False, True):
        seconds = measure.time_images(named, images, batch_size=16, repeats=2, channels_last=channels_last)
        assert list(seconds.index) == ["a", "b"] and (seconds > 0).all()
    table = td.compare_models(named, {"a": 0.9, "b": 0.8}, images, batch_size=32, repeats=1)
    assert table.loc["a", "speedup"] == 1.0 and table.loc["b", "parameters"] < table.loc["a", "parameters"]
    assert table.loc["b", "test accuracy (%)"] == pytest.approx(80.0)


@pytest.fixture()
def tiny_mnist():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (120,), generator=g)
    images = torch.rand(120, 1, 28, 28, generator=g) * 0.1
    images[torch.arange(120), 0, labels, labels] = 1.0  # a learnable signal: the pixel (y, y)
    ds = data.ImageDataset(images, labels)
    return data.DataSplits("mnist", "tiny", tuple(map(str, range(10))), ds, ds, ds, {"n": 120})


def test_fine_tuning_is_cached_by_origin_and_settings(tmp_path, tiny_mnist):
    torch.manual_seed(0)
    first = cache.fine_tune_cached(
        models.LeNet(), "origin-a", tiny_mnist, epochs=2, root=tmp_path, progress=False
    )
    assert not first.cached and len(first.history) == 2
    torch.manual_seed(1)
    again = cache.fine_tune_cached(
        models.LeNet(), "origin-a", tiny_mnist, epochs=2, root=tmp_path, progress=False
    )
    assert again.cached and again.key == first.key and again.test == first.test
    pairs = zip(again.model.state_dict().values(), first.model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    other = cache.fine_tune_cached(
        models.LeNet(), "origin-b", tiny_mnist, epochs=2, root=tmp_path, progress=False
    )
    assert other.key != first.key and not other.cached


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
    assert isinstance(table, pd.DataFrame) and table.loc["test accuracy (%)", "full data (draft)"] == 98.0


def test_the_week6_network_decomposed_by_each_plan_and_compared_like_for_like(tmp_path, tiny_mnist):
    import functools

    from conftest import trained_result

    from netshrink import published

    torch.manual_seed(0)
    base = trained_result(models.LeNet(), data.make_loader(tiny_mnist.test, 60), key="lenet")
    fine_tune = functools.partial(cache.fine_tune_cached, root=tmp_path, progress=False)
    plans = {
        "draft's plan": published.LENET_PLAN,
        "our plan": {"conv2": ["tucker2", "vbmf"], "l2": ["tucker1", 16]},
    }
    lenet = td.decompose_and_fine_tune(base, tiny_mnist, plans, fine_tune, epochs=1, lr=1e-3)
    assert set(lenet.plans) == set(plans) and isinstance(lenet.plans["our plan"]["conv2"]["rank"], list)
    assert td.describe_plan(lenet.plans["draft's plan"]).startswith("conv1: tucker1 2; conv2: tucker2 [8, 4]")
    table = td.fine_tuned_table(base, lenet, tiny_mnist.test.images[:20], batch_size=10, repeats=1)
    assert list(table.index) == ["original", "draft's plan, fine-tuned", "our plan, fine-tuned"]
    assert table.loc["original", "parameters"] == 120_382
    assert table.loc["our plan, fine-tuned", "accuracy before fine-tuning (%)"] == pytest.approx(
        100 * lenet.tuned["our plan"].before["acc"]
    )
    found = td.lenet_findings(table, lenet, "tiny")
    params = next(c for c in found.comparisons if c["quantity"].endswith("parameters"))
    assert params["ours"] == table.loc["draft's plan, fine-tuned", "parameters"] and params["draft"] == 59_560
    assert found.glue["lenet_draft_params"] == f"{int(params['ours']):,}" and len(found.compressions) == 2
    config = td.lenet_config(epochs=3, data_kwargs={"val_size": 10})
    assert config.model == "lenet" and config.batch_size == 64 and config.epochs == 3


def test_input_case_and_tucker_input_on_real_digits():
    case = inp.input_case("D-T1", val_size=100, train_size=300, epochs=1)
    assert case.name == "digits 3, 4, 7" and case.rank == 3 and case.splits.classes == ("3", "4", "7")
    assert list(case.table.columns) == ["full data", "CP rank 3", "full data (draft)", "CP rank 3 (draft)"]
    assert [c["draft"] for c in case.findings.comparisons] == [0.98, 0.83]
    assert case.findings.comparisons[1]["ours"] == case.experiment.classifiers[1].test_acc
    grid, histograms = inp.case_figures(case)
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
    assert found.glue["dt4_first_rank"] == 15 and [c["draft"] for c in found.comparisons] == [0.70, 0.93]


def test_train_classifier_learns_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (150,), generator=g)
    x = torch.randn(150, 6, generator=g)
    x[torch.arange(150), y] += 4.0
    clf = inp.train_classifier("toy", (x[:100], y[:100]), (x[100:], y[100:]), 8, 3, epochs=30, lr=0.01)
    assert clf.label == "toy" and clf.inputs == 6 and clf.parameters == 6 * 8 + 8 + 8 * 3 + 3
    assert clf.test_acc > 0.8 and clf.predictions.shape == (50,)
