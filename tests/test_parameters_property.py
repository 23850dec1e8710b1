"""A property of the parameter check: whatever value passes it does not fail later for the same
reason. Random values (seeded) of every kind, in range, at and beyond the bounds, of the wrong
type, go to every chapter's check; each value that passes is then handed to what the chapter
does with it (build the network, seed the generators, pick ranks, prune filters, split the data,
decompose the plan's layers), which must accept it."""

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from netshrink import data, models, train
from netshrink.book import chapters, parameters
from netshrink.compress import decompose, prune, ranks

RNG_SEED = 20261202
DRAWS = 30


def _int_values(rule, rng):
    low = 0 if rule.low is None else int(rule.low)
    high = 10**7 if rule.high is None else int(rule.high)
    pool = [low - 1, low, low + 1, high, high + 1, rng.randint(low, min(high, 10**6)), 2**40, -5, True,
            2.5, "3", None, np.int64(rng.randint(0, 100))]  # fmt: skip
    return rng.choice(pool)


def _float_values(rule, rng):
    low = 0.0 if rule.low is None else rule.low
    high = 2.0 if rule.high is None else rule.high
    pool = [low, low + 1e-9, high, high + 1e-6, 1.0, 0.999999, math.nan, math.inf, -0.1, rng.uniform(-1, 2),
            rng.uniform(low, high), "0.1", None, True, np.float32(0.5)]  # fmt: skip
    return rng.choice(pool)


def _plan(rng):
    layer = rng.choice(["conv1", "conv2", "l1", "l2", "conv9"])
    method = rng.choice(["tucker2", "tucker1", "cp", "tt", "jaderberg", "btd", "tuker2"])
    rank = rng.choice([1, 2, 5, 17, 500, [3, 4], [3, 4, 5], [500, 3], "vbmf", 0.9, 1.5, None, -1])
    return {layer: [method, rank]}


def draw(name, rule, rng):
    if name == "tucker_rule":
        return rng.choice(["vbmf", "VBMF", 0.5, 0.99, 1.0, 0.0, -0.2, 1e-9, math.nan, None])
    if rule.kind == "dict":
        return _plan(rng) if rng.random() < 0.9 else rng.choice([[1], "conv2", None])
    if rule.kind == "str":
        return rng.choice([*rule.choices, "", "bogus", None, 3])
    if rule.kind.startswith("list"):
        item = parameters.Rule(rule.kind[5:-1], rule.low, rule.high, rule.low_open, rule.choices)
        if rng.random() < 0.1:
            return rng.choice([[], "1,2", None, 5])
        return [draw(name + "[]", item, rng) for _ in range(rng.randint(1, 3))]
    if rule.kind == "int":
        return _int_values(rule, rng)
    return _float_values(rule, rng)


_CONV = nn.Conv2d(32, 64, 3)


def _rates(values):
    for rate in values if isinstance(values, list) else [values]:
        assert prune.smallest_l1_filters(_CONV, rate).any()


def _seed(seed, values):
    torch.manual_seed(seed)
    torch.Generator().manual_seed(train._epoch_seed(seed, 1000))
    np.random.default_rng(seed)


def _split(name, value, values):
    dataset = parameters._dataset_of(name, values)
    n_train, n_test = data.SPLIT_SIZES[dataset]
    val = values.get("val_size") or 0
    size = {"train_size": value} if name.endswith("train_size") else {"test_size": value}
    if value is not None:  # the arithmetic of data.load_dataset, without loading the images
        upper = n_train - val if name.endswith("train_size") else n_test
        assert 0 <= val < n_train and 0 < value <= upper, (name, value, size)


def _budget(fraction, values):
    layers = values.get("layers") or []
    cnn = models.build_model("cifar_cnn", pool=True) if layers else None
    for layer in layers[1:]:
        module = cnn.get_submodule(layer)
        for method in values.get("methods", []):
            options = {"n_blocks": values.get("btd_blocks", 2)} if method == "btd" else {}
            budget = int(
                fraction
                * ranks.layer_parameters(module, "tucker2", [module.in_channels, module.out_channels])
            )
            ranks.rank_for_budget(module, method, budget, **options)


LATER = {
    "seed": _seed,
    "width": lambda w, values: models.vgg16(width=w)(torch.zeros(1, 3, 32, 32)),
    "tucker_rule": lambda rule, values: ranks.select_rank(torch.randn(64, 32, 3, 3), 0, rule),
    "schedule": lambda s, values: train.TrainConfig(
        "mlp", "mnist", schedule=s, label_smoothing=values.get("label_smoothing", 0.0)
    ).validate(),
    "label_smoothing": lambda s, values: train.TrainConfig("mlp", "mnist", label_smoothing=s).validate(),
    "lr": lambda lr, values: train.TrainConfig("mlp", "mnist", lr=lr).validate(),
    "max_rate": lambda r, values: _rates(r),
    "sensitivity_rates": lambda r, values: _rates(r),
    "prune_rates": lambda r, values: _rates(r),
    "cnn_fractions": lambda r, values: _rates(r),
    "dropouts": lambda ps, values: [models.build_model("mlp", hidden=[8], dropout=p) for p in ps],
    "n_values": lambda ns, values: [prune.random_node_masks(values["hidden"], n, 1) for n in ns],
    "lenet_plan": lambda plan, values: decompose.decompose_model(models.build_model("lenet"), plan),
    "budget_fraction": _budget,
}


@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_whatever_passes_the_check_does_not_fail_later_for_the_same_reason(chapter):
    rng = random.Random(f"{RNG_SEED}-{chapter.name}")
    known = chapter.parameters("quick")
    base = chapter.parameters("smoke")
    fed = refused = 0
    for name in base:
        rule = parameters.RULES[name]
        later = LATER.get(name) or (
            (lambda v, values, n=name: _split(n, v, values))
            if name.endswith(("train_size", "test_size"))
            else None
        )
        for _ in range(DRAWS):
            value = draw(name, rule, rng)
            fed += 1
            try:
                checked = parameters.check(chapter.notebook, {**base, name: value}, known)
            except ValueError as err:
                refused += 1
                assert name in str(err) or "val_size" in str(err), f"{name}={value!r}: {err}"
                continue
            if later is not None:
                try:
                    later(checked[name], checked)
                except Exception as err:  # noqa: BLE001 - any failure is the property broken
                    raise AssertionError(
                        f"{chapter.name}: {name}={value!r} passed the check, then failed: {err}"
                    ) from err
    assert refused > fed // 10, "the draws should hold many bad values"
