"""Issue 41, items 9, 10 and 14: numbers that are not numbers are never 'safe', arguments of the
wrong kind are refused, and bad batches end in one ValueError naming the problem."""

import pytest
import torch
from torch import nn

from netshrink import checks, train
from netshrink.compress import decompose, importance, search

NAN, INF = float("nan"), float("inf")


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 10))


def _data(n=16):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 20, generator=g), torch.randint(0, 10, (n,), generator=g))]


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
@pytest.mark.parametrize("where", ["input", "weight", "bias", "next weight"])
def test_nan_or_inf_weights_or_inputs_give_no_loss_changes(where, bad):
    """Item 9: classify labelled every node 'zero', safe to remove."""
    model, data = _mlp(), _data()
    with torch.no_grad():
        if where == "input":
            data[0][0][3, 5] = bad
        else:
            {"weight": model[0].weight, "bias": model[0].bias, "next weight": model[2].weight}[where].view(
                -1
            )[7] = bad
    for compute in (importance.loss_change, importance.taylor):
        with pytest.raises(ValueError, match="NaN or infinite"):
            importance.classify(compute(model, "0", data), 0.01)


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_classify_refuses_loss_changes_that_are_not_numbers(bad):
    with pytest.raises(
        ValueError, match=r"importance holds 1 NaN or infinite value\(s\) \(the first at index \[2\]\)"
    ):
        importance.classify(torch.tensor([0.5, -0.5, bad, 0.0]), 0.01)
    assert list(importance.classify(torch.tensor([0.5, -0.5, 0.0]), 0.01)) == ["important", "worse", "zero"]


@pytest.mark.parametrize(
    ("nodes", "got"),
    [([True, False], "booleans"), (torch.tensor([True, False]), "dtype bool"), ([1.7, 2.0], "dtype float"),
     (torch.tensor([0.9]), "dtype float32"), ([1, True], "booleans"), ("12", "str"),
     ([[1, 2.5]], "dtype float")],
)  # fmt: skip
def test_node_indices_refuse_booleans_and_floats(nodes, got):
    """Item 10: True read as node 1 and 1.7 truncated to node 1 chose other nodes silently."""
    with pytest.raises(ValueError, match=f"nodes must be integer node indices in 0..7; got {got}"):
        importance.ablate(_mlp(), "0", _data(), nodes=nodes)
    with pytest.raises(ValueError, match="nodes must be integer node indices"):
        checks.check_indices("nodes", nodes, 8)


def test_indices_counts_and_fractions_take_their_own_kind_only():
    assert importance.ablate(_mlp(), "0", _data(), nodes=[2, 5]).nodes.tolist() == [2, 5]
    with pytest.raises(ValueError, match="nodes must be indices in 0..7; got index 8"):
        checks.check_indices("nodes", [8], 8)
    order = torch.tensor([2, 0, 1])
    for counts, message in (
        ([True], r"counts\[0\]=True"),
        ([1.7], r"counts\[0\]=1.7"),
        ([4], r"counts\[0\]=4"),
    ):
        with pytest.raises(ValueError, match=message):
            search.prefix_masks(order, counts)
    with pytest.raises(ValueError, match="order must be integer node indices"):
        search.prefix_masks(torch.tensor([True, False, True]), [1])
    assert search.prefix_masks(order, [1]).tolist() == [[True, True, False]]
    for value in (True, NAN, INF, "0.5", 1.5, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            checks.check_fraction("fraction", value)
    assert checks.check_fraction("fraction", 0.25) == 0.25


def test_taylor_checks_labels_and_leaves_the_callers_gradients():
    """Item 14: labels outside the classes gave raw torch errors; taylor erased `.grad`."""
    model = _mlp()
    with pytest.raises(ValueError, match="labels hold class 12; allowed: 0..9"):
        importance.taylor(model, "0", [(torch.randn(4, 20), torch.tensor([0, 1, 12, 3]))])
    with pytest.raises(ValueError, match="labels hold class -1"):
        importance.taylor(model, "0", [(torch.randn(4, 20), torch.tensor([0, -1, 2, 3]))])
    grads = [torch.full_like(p, 0.5) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g.clone()
    estimate = importance.taylor(model, "0", _data())
    assert estimate.shape == (8,) and torch.isfinite(estimate).all()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))


@pytest.mark.parametrize("bad", [NAN, INF])
@pytest.mark.parametrize(("layer", "method", "rank"), [(nn.Linear(12, 10), "tucker2", [4, 4]),
                                                       (nn.Conv2d(6, 8, 3), "tucker2", [3, 3]),
                                                       (nn.Conv2d(6, 8, 3), "cp", 4)])  # fmt: skip
def test_a_decomposition_of_nan_weights_is_refused_naming_them(layer, method, rank, bad):
    """Item 14: "SVD did not converge" (or a NaN model) instead of naming the weights."""
    with torch.no_grad():
        layer.weight.view(-1)[3] = bad
    with pytest.raises(ValueError, match="module weight holds 1 NaN or infinite value"):
        decompose.decompose_layer(layer, method, rank)


def test_a_loader_of_empty_batches_is_one_clear_error_and_an_empty_batch_changes_nothing():
    """Item 14: ZeroDivisionError from the batched evaluator; a NaN training loss."""
    empty = [(torch.zeros(0, 20), torch.zeros(0, dtype=torch.long))]
    for compute in (importance.loss_change, importance.taylor):
        with pytest.raises(ValueError, match="loader yielded no examples"):
            compute(_mlp(), "0", empty * 3)
    assert torch.allclose(importance.loss_change(_mlp(), "0", _data() + empty),
                          importance.loss_change(_mlp(), "0", _data()))  # fmt: skip
    from netshrink.compress import masking  # called directly, not through importance

    keep = torch.ones(2, 8, dtype=torch.bool)
    keep[1, :3] = False
    with pytest.raises(ValueError, match="loader yielded no examples"):
        masking.evaluate_masks(_mlp(), "0", empty * 2, keep=keep)
    got = masking.evaluate_masks(_mlp(), "0", empty + _data() + empty, keep=keep)
    assert torch.allclose(got.loss, masking.evaluate_masks(_mlp(), "0", _data(), keep=keep).loss)
    model = _mlp()
    history = train.fit(
        model, torch.optim.SGD(model.parameters(), lr=0.1), _data() + empty, 1, progress=False
    )
    assert history[0]["train_loss"] == history[0]["train_loss"], "NaN training loss"
    with pytest.raises(ValueError, match="the training loader yielded no examples"):
        train.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), empty * 2, 1, progress=False)


@pytest.mark.parametrize("bad", [False, True, NAN, 1.0, -0.1, "0.5"])
def test_pruning_fractions_are_fractions_below_one(bad):
    from netshrink.compress import prune

    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"fraction=.*(fraction|allowed: \[0, 1\))"):
        prune.magnitude_prune(nn.Sequential(conv), "0", bad)
    with pytest.raises(ValueError, match=r"fraction="):
        prune.smallest_l1_filters(conv, bad)
    assert int(prune.smallest_l1_filters(conv, 0.25).sum()) == 6
