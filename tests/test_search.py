"""Pruning by importance (compress.search): once, exhaustive, greedy, within a loss bound, prefix masks."""

import pytest
import torch
from conftest import per_class_metrics, random_batches

from netshrink import models
from netshrink.compress import importance, masking, prune, search


def trained_mlp(hidden=(24,), steps=150, seed=0):
    """A small MLP fitted to a random teacher: its nodes differ in importance, some are worse."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(600, 20, generator=g)
    y = (x @ torch.randn(20, 10, generator=g)).argmax(1)
    torch.manual_seed(seed)
    net = models.MLP(in_features=20, hidden=hidden)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[:400]), y[:400]).backward()
        opt.step()
    return net.eval(), [(x[400:500], y[400:500]), (x[500:], y[500:])]


def outputs_equal(a, b, shape=(20,)):
    x = torch.randn(32, *shape)
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-5)


def test_exhaustive_pruning_stops_when_every_removal_raises_the_loss():

    net, val = trained_mlp()
    result = search.prune_exhaustive(net, "hidden.0", val)
    steps = result.steps
    assert len(steps) > 1, "the teacher task leaves some worse nodes"
    assert all(s.loss_change <= 0 for s in steps[1:])
    assert all(b.val_loss <= a.val_loss + 1e-9 for a, b in zip(steps, steps[1:], strict=False))
    assert [s.removed for s in steps] == list(range(len(steps)))
    assert result.model.hidden[0].out_features == result.nodes_left == 24 - (len(steps) - 1)
    assert (importance.loss_change(result.model, "hidden.0", val) > 0).all()
    assert outputs_equal(result.model, prune.remove_nodes(net, "hidden.0", result.keep))
    # every step evaluates every node still there
    assert result.evaluations == sum(range(result.nodes_left, 25))
    assert net.hidden[0].out_features == 24, "the original is untouched"


def test_greedy_pruning_removes_only_harmless_nodes_and_tests_fewer():

    net, val = trained_mlp()
    greedy = search.prune_greedy(net, "hidden.0", val, important=0.01)
    exhaustive = search.prune_exhaustive(net, "hidden.0", val)
    assert all(s.loss_change <= 0 for s in greedy.steps[1:])
    assert all(b.val_loss <= a.val_loss + 1e-9 for a, b in zip(greedy.steps, greedy.steps[1:], strict=False))
    assert greedy.nodes_left < 24
    assert greedy.evaluations < exhaustive.evaluations
    assert outputs_equal(greedy.model, prune.remove_nodes(net, "hidden.0", greedy.keep))
    # the final pass removed nothing: every node tested in it raises the loss
    change = importance.loss_change(greedy.model, "hidden.0", val)
    nodes = [s.node for s in greedy.steps[1:]]
    assert (change > 0).sum() >= 1 and len(set(nodes)) == len(nodes)


@pytest.mark.parametrize("zero", [False, True])
def test_pruning_once_removes_the_classified_nodes(zero):
    net, val = trained_mlp()
    change = importance.loss_change(net, "hidden.0", val)
    labels = importance.classify(change, 1e-4)
    result = search.prune_once(net, "hidden.0", val, tol=1e-4, zero=zero)
    expected = (labels == "worse") | ((labels == "zero") if zero else False)
    assert torch.equal(~result.keep, torch.as_tensor(expected))
    assert result.model.hidden[0].out_features == 24 - int(expected.sum())
    assert result.evaluations == 24


def test_pruning_a_conv_layer_removes_channels():
    net = models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7).eval()
    loader = random_batches((1, 8, 8), n=2)
    result = search.prune_exhaustive(net, "conv2", loader, tol=10.0)  # everything may go but one
    assert (
        result.nodes_left == 1
        and result.model.conv2.out_channels == 1
        and result.model.conv3.in_channels == 1
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda n, v: search.prune_exhaustive(n, "hidden.0", v, tol=-0.1),
            r"tol=-0.1 must be a finite number >= 0",
        ),
        (
            lambda n, v: search.prune_greedy(n, "hidden.0", v, important=-1),
            r"important=-1 must be a finite number >= 0",
        ),
        (lambda n, v: search.prune_greedy(n, "hidden.0", v, tol=0.1, important=0.01), r"important=0.01"),
        (lambda n, v: search.prune_once(n, "hidden.3", v), r"layer='hidden.3' does not exist"),
        (lambda n, v: search.prune_greedy(n, "out", v), r"layer='out' is the output layer"),
    ],
)
def test_bad_pruning_arguments_are_refused(call, message):
    net, val = trained_mlp(steps=1)
    with pytest.raises(ValueError, match=message):
        call(net, val)


@pytest.mark.parametrize(("per_class", "tol"), [(False, 0.02), (True, 0.3)])
def test_pruning_within_a_bound_keeps_the_loss_within_it(per_class, tol):
    net, val = trained_mlp()
    result = search.prune_within(net, "hidden.0", val, tol, per_class=per_class)
    before, after = (
        importance.ablate(net, "hidden.0", val, nodes=[]),
        importance.ablate(result.model, "hidden.0", val, nodes=[]),
    )
    if per_class:
        assert ((after.intact_class_loss - before.intact_class_loss).nan_to_num(0) <= tol + 1e-9).all()
    else:
        assert after.intact_loss - before.intact_loss <= tol + 1e-9
    assert 0 < result.nodes_left < 24
    assert result.model.hidden[0].out_features == result.nodes_left
    assert result.evaluations >= 24 - result.nodes_left


def test_the_per_class_bound_is_the_stricter():
    net, val = trained_mlp()
    overall = search.prune_within(net, "hidden.0", val, 0.02)
    per_class = search.prune_within(net, "hidden.0", val, 0.02, per_class=True)
    assert per_class.nodes_left >= overall.nodes_left


@pytest.mark.parametrize(
    ("model", "layer", "shape"),
    [
        (lambda: models.MLP(in_features=20, hidden=(16, 12)), "hidden.1", (20,)),
        (
            lambda: models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7),
            "conv2",
            (1, 8, 8),
        ),
    ],
)
def test_mask_sweeps_equal_the_physically_pruned_models(model, layer, shape):

    torch.manual_seed(6)
    net = model().eval()
    loader = random_batches(shape, n=2, size=40)
    n = net.get_submodule(layer).weight.shape[0]
    keep = search.prefix_masks(torch.randperm(n), [0, 1, 3, n - 1])
    sweep = masking.evaluate_masks(net, layer, loader, keep=keep, chunk=3)
    for row, mask in enumerate(keep):
        loss, acc = per_class_metrics(prune.remove_nodes(net, layer, mask), loader)
        assert torch.allclose(sweep.class_loss[row], loss, atol=1e-5, equal_nan=True)
        assert torch.allclose(sweep.class_acc[row], acc, equal_nan=True)
    with pytest.raises(ValueError, match=r"keep must have shape \(\d+,\) or \(masks, "):
        masking.evaluate_masks(net, layer, loader, keep=keep[:, :-1])


def test_exhaustive_pruning_can_stop_at_a_multiple_of_a_width():
    net, val = trained_mlp()
    result = search.prune_exhaustive(net, "hidden.0", val, multiple=8)
    assert result.nodes_left % 8 == 0 and result.nodes_left < 24
    with pytest.raises(ValueError, match=r"multiple=0 is out of range; allowed: integers >= 1"):
        search.prune_exhaustive(net, "hidden.0", val, multiple=0)


def test_pruning_within_a_bound_removes_the_most_nodes_the_bound_allows():
    """k is maximal: checked against the naive sweep (each prefix of least important nodes removed
    by remove_nodes and evaluated by train.evaluate, one model at a time)."""
    from netshrink import train

    net, val = trained_mlp()
    tol = 0.02
    result = search.prune_within(net, "hidden.0", val, tol)
    order = importance.loss_change(net, "hidden.0", val).argsort()
    base = train.evaluate(net, val)["loss"]

    def rise(k):
        return (
            train.evaluate(prune.remove_nodes(net, "hidden.0", search.prefix_masks(order, [k])[0]), val)[
                "loss"
            ]
            - base
        )

    allowed = [k for k in range(1, 24) if rise(k) <= tol + 1e-9]
    assert allowed, "the bound lets some node go"
    assert 24 - result.nodes_left == max(allowed)
