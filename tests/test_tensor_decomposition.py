"""The week-6 network decomposed by plans and fine-tuned (cached), and timed beside the original."""

import functools

import pytest
import torch

from netshrink import cache, data, measure, models, train
from netshrink.compress import decompose
from netshrink.experiments import tensor_decomposition as td


def test_time_images_times_every_model_in_both_layouts():
    torch.manual_seed(0)
    named = {"a": models.LeNet(), "b": decompose.decompose_model(models.LeNet(), {"l1": ["tucker1", 8]})}
    images = torch.rand(64, 1, 28, 28)
    for channels_last in (False, True):
        seconds = measure.time_images(named, images, batch_size=16, repeats=2, channels_last=channels_last)
        assert list(seconds.index) == ["a", "b"] and (seconds > 0).all()
    table = td.compare_models(named, {"a": 0.9, "b": 0.8}, images, batch_size=32, repeats=1)
    assert table.loc["a", "speedup"] == 1.0 and table.loc["b", "parameters"] < table.loc["a", "parameters"]
    assert table.loc["b", "test accuracy"] == 0.8 and table.attrs["images"] == 64


def test_measure_models_and_model_table_keep_plain_units_under_stable_names():
    torch.manual_seed(0)
    named = {"a": models.LeNet(), "b": decompose.decompose_model(models.LeNet(), {"l1": ["tucker1", 8]})}
    measured = td.measure_models(
        named, {"a": 0.9, "b": 0.8}, torch.rand(8, 1, 28, 28), batch_size=4, repeats=1
    )
    assert list(measured.columns[:3]) == ["parameters", "MFLOPs per image", "accuracy"]
    assert measured.loc["b", "accuracy"] == 0.8 and "seconds" in measured
    assert measured.attrs["images"] == 8 and set(measured.attrs["runs"]) == {"a", "b"}
    table = td.model_table(measured)
    assert list(table.columns) == [
        "parameters",
        "MFLOPs per image",
        "test accuracy",
        "seconds",
        "seconds, channels last",
        "speedup",
        "speedup, channels last",
    ]
    assert table.loc["b", "test accuracy"] == 0.8 and "accuracy" not in table and "accuracy" in measured
    assert (table["seconds"] == measured["seconds"]).all() and table.attrs["images"] == 8


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


def test_sgd_fine_tuning_anneals_its_rate_to_zero_and_has_its_own_key(tmp_path, tiny_mnist):
    torch.manual_seed(0)
    adam = cache.fine_tune_cached(models.LeNet(), "o", tiny_mnist, epochs=2, root=tmp_path, progress=False)
    torch.manual_seed(0)
    sgd = cache.fine_tune_cached(
        models.LeNet(), "o", tiny_mnist, epochs=4, lr=0.05, optimizer="sgd", label_smoothing=0.1,
        root=tmp_path, progress=False,
    )  # fmt: skip
    assert not sgd.cached and sgd.key != adam.key
    lrs = sgd.history["lr"].tolist()
    assert lrs[0] == pytest.approx(0.05) and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.05 * 0.2
    assert sgd.test["loss"] < sgd.before["loss"]  # it trains
    torch.manual_seed(1)
    again = cache.fine_tune_cached(
        models.LeNet(), "o", tiny_mnist, epochs=4, lr=0.05, optimizer="sgd", label_smoothing=0.1,
        root=tmp_path, progress=False,
    )  # fmt: skip
    assert again.cached and again.key == sgd.key


def test_distilled_fine_tuning_has_its_own_key_and_weight_zero_is_plain_fine_tuning(tmp_path, tiny_mnist):
    tune = functools.partial(cache.fine_tune_cached, origin="o", splits=tiny_mnist, epochs=1, root=tmp_path,
                             progress=False)  # fmt: skip
    torch.manual_seed(0)
    teacher = tune(models.LeNet())
    plain = tune(models.LeNet())
    assert plain.cached and plain.key == teacher.key
    none = tune(models.LeNet(), distill=train.Distillation(teacher.model, teacher.key, weight=0.0))
    assert none.cached and none.key == teacher.key, "weight 0: the same training, the same key"
    distilled = tune(models.LeNet(), distill=train.Distillation(teacher.model, teacher.key, weight=0.9))
    hot = train.Distillation(teacher.model, teacher.key, 0.9, temperature=8.0)
    hotter = tune(models.LeNet(), distill=hot)
    other = tune(models.LeNet(), distill=train.Distillation(teacher.model, "another teacher", weight=0.9))
    keys = {teacher.key, distilled.key, hotter.key, other.key}
    assert len(keys) == 4 and not distilled.cached and not hotter.cached
    assert tune(models.LeNet(), distill=train.Distillation(teacher.model, teacher.key, weight=0.9)).cached


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "rmsprop"}, r"optimizer='rmsprop' is not known; allowed values: adam, sgd"),
        ({"label_smoothing": 1.0}, r"label_smoothing=1.0 is out of range; allowed: 0 <= x < 1"),
    ],
)
def test_fine_tuning_refuses_an_unknown_optimizer_or_smoothing(tmp_path, tiny_mnist, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cache.fine_tune_cached(
            models.LeNet(), "o", tiny_mnist, epochs=1, root=tmp_path, progress=False, **kwargs
        )
    assert not any(tmp_path.rglob("*.pt")), "nothing written"


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
    assert (
        table.loc["our plan, fine-tuned", "accuracy before fine-tuning"]
        == lenet.tuned["our plan"].before["acc"]
    )
    assert table[["test accuracy", "accuracy before fine-tuning"]].stack().between(0, 1).all()
    assert (table["seconds"] > 0).all() and table.attrs["images"] == 20
    assert not [c for c in table.columns if "%" in c or c.startswith("s for ")], "plain units, stable names"
    found = td.lenet_findings(table, lenet, "tiny")
    ours = table.loc["our plan, fine-tuned"]
    assert found.glue["lenet_ours_acc"] == 100 * ours["test accuracy"], "the prose's % of the fraction"
    assert found.glue["lenet_ours_before"] == 100 * ours["accuracy before fine-tuning"]
    assert (
        found.glue["lenet_ours_s"] == ours["seconds"]
        and found.glue["lenet_orig_s"] == table["seconds"].iloc[0]
    )
    after = next(c for c in found.comparisons if c["quantity"].endswith("after fine-tuning"))
    assert after["ours"] == table.loc["draft's plan, fine-tuned", "test accuracy"]
    assert {c["accuracy"] for c in found.compressions} == set(table["test accuracy"].iloc[1:])
    params = next(c for c in found.comparisons if c["quantity"].endswith("parameters"))
    assert params["ours"] == table.loc["draft's plan, fine-tuned", "parameters"] and params["draft"] == 59_560
    assert found.glue["lenet_draft_params"] == f"{int(params['ours']):,}" and len(found.compressions) == 2
    config = td.lenet_config(epochs=3, data_kwargs={"val_size": 10})
    assert config.model == "lenet" and config.batch_size == 64 and config.epochs == 3
