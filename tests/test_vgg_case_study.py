"""The VGG-16 case study's building blocks on a narrow VGG-16."""

import dataclasses
import functools

import pandas as pd
import pytest
import torch
from torch import nn

from netshrink import data, measure, models, train
from netshrink.compress import decompose
from netshrink.experiments import vgg_case_study as vc
from netshrink.experiments import vgg_prose, vgg_rates


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return models.vgg16(width=0.0625).eval()


@pytest.fixture(scope="module")
def loader():
    g = torch.Generator().manual_seed(0)
    ds = data.ImageDataset(torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g))
    return data.make_loader(ds, 32)


def test_sensitivity_reuses_the_prefix_and_matches_a_full_evaluation(vgg, loader):
    layers = models.conv_layers(vgg)
    assert len(layers) == 13 and layers[0] == "features.0" and layers[-1] == "features.40"
    table = vc.sensitivity(vgg, loader, [layers[2], layers[-1]], [0.0, 0.5])
    assert list(table.columns) == ["layer", "rate", "filters left", "validation accuracy"] and len(table) == 4
    assert vgg_rates.ACCURACY == "validation accuracy"
    full = train.evaluate(vgg, loader)["acc"]  # a fraction, as the table keeps it
    assert list(table[table["rate"] == 0.0]["validation accuracy"]) == pytest.approx([full, full])
    pruned = vc.prune_filters(vgg, {layers[2]: 0.5})
    row = table[(table["layer"] == layers[2]) & (table["rate"] == 0.5)].iloc[0]
    assert row["validation accuracy"] == pytest.approx(train.evaluate(pruned, loader)["acc"])
    assert row["filters left"] == pruned.get_submodule(layers[2]).out_channels == 4


def test_rates_follow_the_tolerance():
    table = pd.DataFrame({
        "layer": ["a"] * 3 + ["b"] * 3, "rate": [0.25, 0.5, 0.75] * 2,
        "validation accuracy": [0.90, 0.894, 0.80, 0.85, 0.70, 0.60],
    })  # fmt: skip
    # accuracies are fractions, the tolerance is in points
    assert vc.rates_from_sensitivity(table, 0.90, 1.0, 0.9) == {"a": 0.5, "b": 0.0}
    assert vc.rates_from_sensitivity(table, 0.90, 20.0, 0.5) == {"a": 0.5, "b": 0.5}
    in_percent = table.rename(columns={"validation accuracy": "accuracy (%)"})  # the old printed column
    with pytest.raises(ValueError, match=r"no column 'validation accuracy'; its columns: layer, rate, acc"):
        vc.rates_from_sensitivity(in_percent, 0.9, 1.0, 0.9)


def test_the_pipeline_shrinks_the_network_and_keeps_it_working(vgg):
    layers = models.conv_layers(vgg)
    pruned = vc.prune_filters(vgg, {name: 0.5 for name in layers})
    assert models.count_parameters(pruned) < models.count_parameters(vgg) / 3
    plan = vc.tucker_plan(pruned, "vbmf")
    assert "features.0" not in plan and len(plan) == 12
    decomposed = decompose.decompose_model(pruned, plan)
    head = vc.classifier_plan(decomposed, 0.9)
    assert list(head) == ["classifier.0"]
    compact = decompose.decompose_model(decomposed, head)
    x = torch.rand(2, 3, 32, 32)
    assert compact(x).shape == (2, 10)
    table = vc.step_table({"a": vgg, "b": compact}, {"a": 0.5, "b": 0.4}, x, batch_size=2, repeats=1)
    assert table.loc["a", "parameters ratio"] == 1 and table.loc["b", "parameters ratio"] > 3
    assert table.loc["b", "file size (kB)"] < table.loc["a", "file size (kB)"]
    with pytest.raises(
        ValueError, match=r"layer='features.1' is not a conv layer it can follow; allowed values: features.0"
    ):
        vc.prune_filters(vgg, {"features.1": 0.5})
    with pytest.raises(ValueError, match=r"fraction=1.2 is out of range; allowed: \[0, 1\)"):
        vc.prune_filters(vgg, {"features.0": 1.2})


def test_published_table_counts_our_full_vgg_as_the_papers_do():
    table = vc.published_table()
    ours = table.loc["our VGG-16 at full width (counted, multiply-adds)"]
    assert 14.9e6 < ours["parameters"] < 15.3e6, "VGG-16 for CIFAR-10: about 15.0M parameters (Li et al.)"
    assert 300 < ours["M multiply-adds"] < 320, "about 313M multiply-adds (Li et al.)"


def test_reduce_vgg_keeps_every_step_as_it_was_made(vgg, loader, tmp_path):
    import functools

    from conftest import trained_result

    from netshrink import cache

    images, labels = torch.cat([x for x, _ in loader]), torch.cat([y for _, y in loader])
    ds = data.ImageDataset(images, labels)
    splits = data.DataSplits("cifar10", "tiny CIFAR", tuple("abcdefghij"), ds, ds, ds, {"n": len(ds)})
    base = trained_result(vgg, loader, key="vgg")
    fine_tune = functools.partial(cache.fine_tune_cached, root=tmp_path, progress=False)
    rates = {name: 0.5 for name in models.conv_layers(vgg)[1:4]}
    reduction = vc.reduce_vgg(base, splits, loader, rates, 0.8, fine_tune, epochs=1, lr=1e-4)
    assert list(reduction.models) == [
        "original", "filters pruned", "filters pruned, fine-tuned", "+ Tucker-2 convs",
        "+ Tucker-2 convs, fine-tuned", "+ Tucker-2 classifier, fine-tuned",
    ]  # fmt: skip
    pruned = reduction.models["filters pruned"]
    # fine-tuning worked on a copy: the pruned step still gives its own accuracy
    assert reduction.accuracy["filters pruned"] == pytest.approx(train.evaluate(pruned, loader)["acc"])
    assert pruned.get_submodule(models.conv_layers(vgg)[1]).out_channels == 2
    assert reduction.plans["rates"] == rates and list(reduction.plans["classifier"]) == ["classifier.0"]
    table = vc.step_table(reduction.models, reduction.accuracy, images[:4], batch_size=2, repeats=1)
    assert list(table.columns) == [
        "parameters", "MFLOPs per image", "test accuracy", "seconds", "seconds, channels last",
        "file size (kB)", "parameters ratio", "speedup", "speedup, channels last",
    ]  # fmt: skip
    assert table["test accuracy"].tolist() == [reduction.accuracy[k] for k in reduction.models], "fractions"
    assert (table["seconds"] > 0).all() and table["speedup"].iloc[0] == 1
    found = vc.reduction_findings(table, network="VGG", data_set="tiny", tucker_rule=0.8)
    assert found.glue["final_ratio"] == table.iloc[-1]["parameters ratio"] > 1
    acc = reduction.accuracy  # the glue in %, as the prose quotes it
    last, tucker = "+ Tucker-2 classifier, fine-tuned", "+ Tucker-2 convs"
    assert found.glue["final_acc"] == pytest.approx(100 * acc[last])
    assert found.glue["final_drop"] == pytest.approx(100 * (acc["original"] - acc[last]))
    assert found.glue["pruned_acc"] == pytest.approx(100 * acc["filters pruned, fine-tuned"])
    assert found.glue["tucker_before"] == pytest.approx(100 * acc[tucker])
    assert found.glue["tucker_after"] == pytest.approx(100 * acc[f"{tucker}, fine-tuned"])
    assert [c["model"] for c in found.compressions] == [f"VGG, {r}" for r in table.index if "fine-tuned" in r]
    assert [c["accuracy"] for c in found.compressions] == [acc[r] for r in table.index if "fine-tuned" in r]
    assert all(c["base_accuracy"] == acc["original"] for c in found.compressions), "fractions, as measured"
    base_found = vc.base_findings(base, splits, table, width=0.0625)
    assert base_found.glue["network"] == "VGG-16 at 0.0625 of its width" == vc.network_name(0.0625)
    assert vc.network_name(1) == "VGG-16"
    rates, rule = {"a": 0.5, "b": 0.0}, {"prune_tol": 2.0, "max_rate": 0.9, "tucker_rule": "vbmf"}
    sens = vc.sensitivity_findings(vgg, vc.ChosenRates(rates, 2.0), **rule)
    assert sens.glue["rates"] == "50, 0" and sens.glue["n_spared"] == 1 and sens.glue["prune_tol"] == 2.0
    assert sens.glue["rank_rule"].startswith("VBMF on the unfolded kernels")
    assert "within 2 points of the unpruned network's (at most 0.9)" in sens.glue["pruning_rule"]
    # the tolerance and the speedup are the chosen values, carried by ChosenRates, never read from text
    chosen = vc.ChosenRates(rates, 4.0, 1.25)
    timed = vc.sensitivity_findings(vgg, chosen, **rule, target_speedup=1.2)
    assert timed.glue["prune_tol"] == 4.0 and timed.glue["rates"] == "50, 0"
    assert "in steps of 2 points" in timed.glue["pruning_rule"]
    assert "at 4 points it measured 1.25 times" in timed.glue["pruning_rule"]


def test_file_size_and_config():
    small, large = models.vgg16(width=0.0625), models.vgg16(width=0.125)
    assert 0 < measure.file_size(small) < measure.file_size(large)
    config = vc.vgg_config(width=0.5, epochs=3, lr=0.1, data_kwargs={"val_size": 10})
    assert config.model == "vgg16" and config.model_kwargs["width"] == 0.5 and config.lr == 0.1


def test_the_base_recipe_reaches_the_model_and_optimizer_and_its_defaults_keep_earlier_keys():
    default = vc.vgg_config(width=0.25, epochs=50, lr=0.1, schedule="onecycle", label_smoothing=0.1,
                            data_kwargs=vc.data_kwargs(5000, None, None, 0))  # fmt: skip
    assert default.model_kwargs == {"width": 0.25} and default.weight_decay == 5e-4
    assert default.key() == "74b8ab090320f019"  # the first full run's base, trained with these defaults
    lean = vc.vgg_config(width=0.25, epochs=1, weight_decay=1e-4, dropout=0.0)
    assert lean.key() != default.key() and lean.weight_decay == 1e-4
    model = models.build_model(lean.model, **lean.model_kwargs)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    assert [m.p for m in models.vgg16(width=0.25).modules() if isinstance(m, nn.Dropout)] == [0.5]
    optimizer = train.make_optimizer(lean, model.parameters())
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_vgg16_refuses_a_dropout_outside_its_range(dropout):
    with pytest.raises(ValueError, match="dropout=.*0 <= dropout < 1"):
        models.vgg16(width=0.0625, dropout=dropout)


@pytest.mark.parametrize(
    ("schedule", "smoothing", "dropout", "words"),
    [
        ("onecycle", 0.1, 0.0, "weight decay 0.0001, a one-cycle learning-rate schedule peaking at 0.1, "
         "label smoothing 0.1, no dropout"),
        ("cosine", 0.0, 0.5, "weight decay 0.0001, a cosine learning-rate schedule from 0.1, dropout 0.5 "
         "before the last layer"),
    ],
)  # fmt: skip
def test_the_page_names_the_recipe_the_network_was_trained_with(schedule, smoothing, dropout, words):
    config = vc.vgg_config(
        width=0.25, epochs=1, lr=0.1, schedule=schedule, label_smoothing=smoothing, weight_decay=1e-4,
        dropout=dropout,
    )  # fmt: skip
    assert vc.training_recipe(config) == words
    in_bf16 = dataclasses.replace(config, precision="bfloat16")
    assert vc.training_recipe(in_bf16) == words + ", under bfloat16 autocast over float32 weights"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("sgd", 0.01, 6, 0.1), "6 epochs of SGD (Nesterov momentum 0.9, weight decay 5e-4) with a cosine "
                                "schedule from 0.01 to zero, label smoothing 0.1"),
        (("adam", 0.001, 1, 0.0), "1 epoch of Adam at a constant 0.001"),
        (("adam", 0.001, 2, 0.0, 0.9, 4.0), "2 epochs of Adam at a constant 0.001, distilled from the "
                                            "original network (Hinton et al. 2015: weight 0.9 on its outputs "
                                            "softened at temperature 4)"),
    ],
)  # fmt: skip
def test_the_page_names_the_fine_tuning_of_each_step(args, words):
    assert vc.fine_tuning_recipe(*args) == words


def _long_sensitivity(layers, rates, drops):
    """A sensitivity table from 0.9 (fractions) with each layer losing `drops[layer] * rate * 10` points."""
    return pd.DataFrame(
        [{"layer": n, "rate": r, vgg_rates.ACCURACY: 0.9 - drops[n] * r / 10} for n in layers for r in rates]
    )


def test_tolerance_candidates_step_up_to_the_largest_rates():
    layers, rates = ["a", "b"], [0.25, 0.5, 0.75]
    sens = _long_sensitivity(layers, rates, {"a": 1.0, "b": 4.0})  # a: 2.5, 5, 7.5 points; b: 10, 20, 30
    found = vc.tolerance_candidates(sens, 0.9, 5.0, 0.9)  # accuracy a fraction, steps in points
    assert list(found) == [5.0, 10.0, 20.0, 30.0]
    assert found[5.0] == {"a": 0.5, "b": 0.0} and found[30.0] == {"a": 0.75, "b": 0.75}
    assert len({tuple(r.values()) for r in found.values()}) == len(found), "each set of rates once"
    with pytest.raises(ValueError, match=r"prune_tol=0 is out of range; allowed: a number above 0"):
        vc.tolerance_candidates(sens, 0.9, 0, 0.9)


def test_rates_for_speedup_take_the_smallest_tolerance_fast_enough(vgg, monkeypatch):
    layers = models.conv_layers(vgg)
    sens = _long_sensitivity(layers, [0.25, 0.5], {name: 1.0 + i for i, name in enumerate(layers)})
    timed = []

    def time_by_parameters(named, images, batch_size, repeats):  # deterministic: time ~ parameters
        timed.append(sorted(named))
        return pd.Series({k: models.count_parameters(m) / 1e6 for k, m in named.items()})

    monkeypatch.setattr(vc.measure, "time_images", time_by_parameters)
    x = torch.rand(2, 3, 32, 32)
    chosen = vc.rates_for_speedup(vgg, sens, 0.9, x, prune_tol=2.0, max_rate=0.9, speedup=1.5)
    assert isinstance(chosen, vc.ChosenRates)
    assert all(isinstance(c, vgg_rates.Candidate) for c in chosen.candidates)
    tolerances = [c.tolerance for c in chosen.candidates]
    assert tolerances == sorted(tolerances) and all(t % 2.0 == 0 for t in tolerances), "steps of prune_tol"
    fast = [c for c in chosen.candidates if c.speedup >= 1.5]
    assert fast and all(c.speedup < 1.5 for c in chosen.candidates if c.tolerance < fast[0].tolerance)
    first = fast[0]  # the chosen values are carried, in plain units
    assert (chosen.tolerance, chosen.speedup, chosen.rates) == (first.tolerance, first.speedup, first.rates)
    assert first.parameters == models.count_parameters(vc.prune_filters(vgg, chosen.rates))
    assert all(c.seconds > 0 and min(c.rates.values()) >= 0 for c in chosen.candidates)
    # the page's table is made from those numbers: the rates as text for reading only
    table = chosen.table()
    assert table.index.name == "tolerance (points)" and list(table.index) == tolerances
    assert list(table.columns) == ["rates (%)", "parameters", "seconds", "speedup"]
    shown = table.loc[chosen.tolerance]
    assert shown["rates (%)"] == vgg_prose.rates_text(chosen.rates)
    assert shown["rates (%)"] == ", ".join(f"{100 * r:.0f}" for r in chosen.rates.values())
    assert list(shown.iloc[1:]) == [first.parameters, first.seconds, first.speedup]
    # rounded to multiples of 2, the same rates prune more
    choose = functools.partial(vc.rates_for_speedup, vgg, sens, 0.9, x, prune_tol=2.0, max_rate=0.9)
    rounded = choose(speedup=1.5, multiple_of=2).rates
    assert models.count_parameters(vc.prune_filters(vgg, rounded, 2)) <= first.parameters
    # no timing at speedup 1: the rates of the tolerance itself
    timed.clear()
    plain = vc.rates_for_speedup(vgg, sens, 0.9, x, prune_tol=2.0, max_rate=0.9, speedup=1.0)
    assert plain.rates == vc.rates_from_sensitivity(sens, 0.9, 2.0, 0.9) and not timed
    assert (plain.tolerance, plain.speedup, plain.candidates) == (2.0, None, ())
    assert plain.table().empty and list(plain.table().columns) == list(table.columns)
    with pytest.raises(ValueError, match=r"target_speedup=1000 is out of reach: .* measured \d+\.\d\dx"):
        vc.rates_for_speedup(vgg, sens, 0.9, x, prune_tol=2.0, max_rate=0.9, speedup=1000)
    with pytest.raises(ValueError, match=r"target_speedup=0.5 is out of range; allowed: a number of at"):
        choose(speedup=0.5)


def test_tucker_goes_to_the_layers_it_makes_faster(vgg, monkeypatch):
    wanted = ("features.7", "features.10")
    plan = {name: spec for name, spec in vc.tucker_plan(vgg, 0.9).items() if name in wanted}
    shapes = {}

    def fake_time_calls(calls, repeats, warmup):  # runs each call once; only features.10 faster decomposed
        for name, call in calls.items():
            shapes[name] = tuple(call().shape)
        return {name: (1.0 if name == "features.10 decomposed" else 2.0) for name in calls}, {}

    monkeypatch.setattr(vc.measure, "time_calls", fake_time_calls)
    chosen, table = vc.faster_in_tucker(vgg, plan, torch.rand(3, 3, 32, 32), repeats=1)
    assert list(chosen) == ["features.10"] and chosen["features.10"] == plan["features.10"]
    assert list(table["layer"]) == ["features.7", "features.10"]
    assert list(table["speedup"]) == [1.0, 2.0]
    # each layer ran on the input the batch gives it, dense and decomposed alike
    assert shapes["features.7 dense"] == shapes["features.7 decomposed"] == (3, 8, 16, 16)
    assert not any(m._forward_pre_hooks for m in vgg.modules()), "the hooks are gone"
    reduction = vc.Reduction({}, {}, {"convs": chosen}, table)
    assert (
        vc.tucker_findings(reduction)
        .glue["tucker_convs"]
        .startswith("the one of the 2 convolutions after the first that runs faster decomposed")
    )
    assert vc.tucker_findings(vc.Reduction({}, {}, {"convs": plan}, None)).glue["n_tucker"] == 2


def test_reduce_vgg_refuses_an_unknown_choice_of_tucker_layers(vgg):
    with pytest.raises(ValueError, match=r"tucker_layers='some' is not known; allowed values: all, faster"):
        vc.reduce_vgg(None, None, None, {}, 0.9, None, epochs=1, lr=0.1, tucker_layers="some")
    with pytest.raises(ValueError, match=r"tucker_layers='faster' needs timing_images"):
        vc.reduce_vgg(None, None, None, {}, 0.9, None, epochs=1, lr=0.1, tucker_layers="faster")


def test_reduce_vgg_distils_every_step_from_the_original_network_folded(vgg, loader):
    from conftest import trained_result

    from netshrink.cache import FineTuned
    from netshrink.compress.fold import fold_batch_norm

    base = trained_result(vgg, loader, key="vgg")
    seen, arguments = [], []

    def fine_tune(model, origin, splits, **kwargs):
        seen.append(kwargs["distill"])
        arguments.append(kwargs)
        return FineTuned(model, pd.DataFrame(), {"acc": 0.5, "loss": 1.0}, f"k{len(seen)}", False, {})

    rates = {models.conv_layers(vgg)[1]: 0.5}
    reduction = vc.reduce_vgg(base, None, loader, rates, 0.8, fine_tune, epochs=1, lr=1e-4,
                              distill_weight=0.9, distill_temperature=3.0)  # fmt: skip
    assert len(seen) == 3 and all(d is seen[0] for d in seen)
    assert all(kw == reduction.fine_tuning for kw in arguments), "the arguments kept for fine-tuning alike"
    assert (seen[0].name, seen[0].weight, seen[0].temperature) == ("vgg", 0.9, 3.0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in seen[0].teacher.modules()), "folded"
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(seen[0].teacher(x), fold_batch_norm(vgg)(x), atol=1e-5)
    seen.clear()
    vc.reduce_vgg(base, None, loader, rates, 0.8, fine_tune, epochs=1, lr=1e-4)
    assert seen == [None, None, None], "no teacher without a weight"
    with pytest.raises(ValueError, match=r"distill_weight=2 is out of range; allowed: 0 <= x <= 1"):
        vc.reduce_vgg(base, None, loader, rates, 0.8, fine_tune, epochs=1, lr=1e-4, distill_weight=2)
