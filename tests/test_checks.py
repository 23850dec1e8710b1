"""Models and inputs the public functions cannot handle get a ValueError naming the argument and
what is allowed, never a raw error from deep inside torch (issue 25, item 13)."""

import numpy as np
import pytest
import torch
from torch import nn

from netshrink import checks, train
from netshrink.compress import decompose, importance, masking, prune


def _mlp(width=8):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, width), nn.ReLU(), nn.Linear(width, 10))


def _batches(classes=10):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(20, 12, generator=g), torch.randint(0, classes, (20,), generator=g))]


def _meta():
    with torch.device("meta"):
        return _mlp()


def _mixed():
    model = _mlp()
    model[3].double()
    return model


CALLS = {
    "loss_change": lambda m: importance.loss_change(m, "1", _batches()),
    "ablate_masks": lambda m: masking.evaluate_masks(
        m, "1", _batches(), keep=torch.ones(2, 8, dtype=torch.bool)
    ),
    "evaluate_masks": lambda m: masking.evaluate_masks(
        m, "1", _batches(), keep=torch.ones(2, 8, dtype=torch.bool)
    ),
    "remove_nodes": lambda m: prune.remove_nodes(m, "1", torch.ones(8, dtype=torch.bool)),
    "evaluate": lambda m: train.evaluate(m, _batches()),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_meta, "model has parameters on the meta device"),
        (lambda: _mlp().half(), "model has float16 parameters; allowed: float32 or float64"),
        (_mixed, r"model mixes parameter dtypes \(float32, float64\)"),
    ],
    ids=["meta", "half", "mixed"],
)
def test_models_the_functions_cannot_handle_are_refused_by_name(call, make, message):
    with pytest.raises(ValueError, match=message):
        call(make())


@pytest.mark.parametrize(
    "call",
    [
        lambda m, b: importance.loss_change(m, "1", b),
        lambda m, b: masking.evaluate_masks(m, "1", b, keep=torch.ones(1, 8, dtype=torch.bool)),
        lambda m, b: train.evaluate(m, b),
    ],
    ids=["loss_change", "evaluate_masks", "evaluate"],
)
def test_a_label_outside_the_models_classes_is_refused(call):
    x, y = _batches()[0]
    y[3] = 10
    with pytest.raises(ValueError, match=r"labels hold class 10; allowed: 0..9 \(the model has 10 outputs\)"):
        call(_mlp(), [(x, y)])


def test_a_layer_of_width_zero_has_no_nodes_to_remove():
    model = _mlp(width=0)
    for call in (
        lambda: importance.loss_change(model, "1", _batches()),
        lambda: prune.remove_nodes(model, "1", torch.ones(0, dtype=torch.bool)),
    ):
        with pytest.raises(ValueError, match=r"layer='1' has no nodes \(width 0\)"):
            call()


def test_a_two_dimensional_keep_for_one_layer_is_refused():
    with pytest.raises(ValueError, match="keep must have shape"):
        prune.remove_nodes(_mlp(), "1", torch.ones(2, 8, dtype=torch.bool))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"in_modes": [2.5, 392], "out_modes": [4, 32]},
            r"in_modes=\[2.5, 392\]; allowed: a list of positive integers",
        ),
        (
            {"in_modes": [28, 28], "out_modes": [True, 128]},
            "out_modes=.*allowed: a list of positive integers",
        ),
    ],
)
def test_tt_linear_modes_must_be_integers_never_truncated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        decompose.tt_linear(nn.Linear(784, 128), rank=2, **kwargs)


@pytest.mark.parametrize("method", ["tucker2", "tt", "btd"])
def test_a_numpy_integer_is_a_rank_for_methods_of_several_ranks(method):
    conv = nn.Conv2d(8, 8, 3, padding=1)
    options = {"n_blocks": 2} if method == "btd" else {}
    layers = decompose.decompose_layer(conv, method, np.int64(2), **options)
    assert layers(torch.randn(1, 8, 6, 6)).shape == (1, 8, 6, 6)


def test_a_negative_iteration_count_and_a_meta_layer_are_refused():
    with pytest.raises(ValueError, match=r"n_iter_max=-1 is out of range; allowed: integers 1..100000"):
        decompose.cp_conv(nn.Conv2d(4, 4, 3), 2, n_iter_max=-1)
    with torch.device("meta"):
        conv = nn.Conv2d(4, 4, 3)
    with pytest.raises(ValueError, match="module has parameters on the meta device"):
        decompose.decompose_layer(conv, "tucker2", [2, 2])


def test_labels_must_be_integer_class_indices():
    with pytest.raises(ValueError, match="labels have dtype float32; allowed: integer class indices"):
        checks.check_labels(torch.zeros(3), 10)
    checks.check_labels(torch.tensor([0, 9]), 10)


def test_rank_lists_modes_and_methods_are_read_or_refused_by_name():
    from netshrink.compress.layers import check_modes, rank_list

    assert rank_list(np.int64(3), 2) == [3, 3] and rank_list((2, 5), 2) == [2, 5]
    with pytest.raises(ValueError, match=r"rank=\[2, 2\] must be an integer or 3 ranks"):
        rank_list([2, 2], 3)
    assert check_modes("in_modes", [np.int64(28), 28]) == [28, 28]
    with pytest.raises(ValueError, match="in_modes='28x28'; allowed: a list of positive integers"):
        check_modes("in_modes", "28x28")
    assert decompose.check_method(nn.Linear(4, 4), "tt") == "tt"
    with pytest.raises(ValueError, match="method='cp' for a Linear; allowed: tucker2, tucker1, tt"):
        decompose.check_method(nn.Linear(4, 4), "cp")


def test_an_empty_loader_is_named_by_the_function_that_got_it():
    assert checks.check_examples(3, "evaluate") == 3
    with pytest.raises(ValueError, match="loader yielded no examples; evaluate needs at least one batch"):
        train.evaluate(_mlp(), [])
    with pytest.raises(ValueError, match="loader yielded no examples; taylor needs at least one batch"):
        importance.taylor(_mlp(), "1", [])


def test_integers_are_ints_or_numpy_integers_never_bools():
    assert checks.is_integer(3) and checks.is_integer(np.int64(3))
    assert not checks.is_integer(True) and not checks.is_integer(3.0) and not checks.is_integer("3")
