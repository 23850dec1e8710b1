import numpy as np
import pytest
import torch
from torch import nn

from netshrink import models, stats
from netshrink.compress import importance, naive, prune, search


def batches(shape, n=2, size=30, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, *shape, generator=g), torch.randint(0, classes, (size,), generator=g))
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    ("model", "layer", "shape"),
    [
        (lambda: models.MLP(in_features=20, hidden=(16,)), "hidden.0", (20,)),
        (lambda: models.MLP(in_features=20, hidden=(16, 12, 8)), "hidden.1", (20,)),
        (
            lambda: models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7),
            "conv2",
            (1, 8, 8),
        ),
        (
            lambda: models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7),
            "fc",
            (1, 8, 8),
        ),
    ],
)
@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_batched_loss_change_equals_one_pass_per_node(model, layer, shape, chunk):
    torch.manual_seed(0)
    net = model().eval()
    loader = batches(shape)
    fast = importance.loss_change(net, layer, loader, chunk=chunk)
    hooked = importance.ablate(net, layer, loader, chunk=chunk, accuracy=False).loss
    slow = naive.loss_change_naive(net, layer, loader)
    assert fast.shape == slow.shape == (net.get_submodule(layer).weight.shape[0],)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(hooked[1:] - hooked[0], slow, atol=1e-5)


def test_zeroing_a_node_equals_removing_its_weights():
    torch.manual_seed(1)
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    loader = batches((20,))
    change = importance.loss_change(net, "hidden.0", loader)
    from netshrink.compress import prune

    keep = torch.ones(16, dtype=torch.bool)
    keep[3] = False
    pruned = prune.remove_nodes(net, "hidden.0", keep)
    base = float(importance.ablate(net, "hidden.0", loader, nodes=[0]).loss[0])
    loss = (
        sum(torch.nn.functional.cross_entropy(pruned(x), y, reduction="sum").item() for x, y in loader) / 60
    )
    assert change[3].item() == pytest.approx(loss - base, abs=1e-6)


def test_classify_by_tolerance():
    labels = importance.classify(torch.tensor([0.5, 0.01, -0.01, -0.3, 0.0]), tol=0.02)
    assert labels.tolist() == ["important", "zero", "zero", "worse", "zero"]
    with pytest.raises(ValueError, match="tol=-1"):
        importance.classify(torch.zeros(3), tol=-1)


def test_taylor_is_minus_activation_times_gradient():
    torch.manual_seed(2)
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    loader = batches((20,), n=1)
    x, y = loader[0]
    a = net.hidden[0](x)
    a.retain_grad()
    logits = net.out(torch.relu(a))
    torch.nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    expected = -(a * a.grad).sum(0) / len(y)
    assert torch.allclose(importance.taylor(net, "hidden.0", loader).float(), expected, atol=1e-6)


def test_taylor_ranks_like_the_oracle_for_small_effects():
    torch.manual_seed(3)
    net = models.MLP(in_features=20, hidden=(64,)).eval()
    with torch.no_grad():
        net.out.weight.mul_(0.05)  # small effects: the first-order estimate is close
    loader = batches((20,), n=3)
    rho = stats.spearman(
        importance.taylor(net, "hidden.0", loader), importance.loss_change(net, "hidden.0", loader)
    )
    assert rho > 0.9


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("conv9", "layer='conv9' does not exist; allowed values: conv1, conv2, conv3, conv4, fc"),
        ("pool", "layer='pool' has no nodes to remove"),
        ("out", "layer='out' is the output layer"),
    ],
)
def test_bad_layer_is_refused(layer, message):
    net = models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7)
    for fn in (importance.loss_change, importance.taylor):
        with pytest.raises(ValueError, match=message):
            fn(net, layer, batches((1, 8, 8), n=1))


def test_classes_cover_every_label():
    assert set(importance.classify(torch.tensor([1.0, 0.0, -1.0]), 0.1)) == set(importance.CLASSES)
    assert isinstance(importance.classify(torch.zeros(2), 0.0), np.ndarray)


def per_class(model, loader, n_classes=10):
    """Mean loss and accuracy per class, one plain forward pass per batch."""
    loss, hits, count = (
        torch.zeros(n_classes, dtype=torch.float64),
        torch.zeros(n_classes),
        torch.zeros(n_classes),
    )
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            loss.index_add_(0, y, torch.nn.functional.cross_entropy(logits, y, reduction="none").double())
            hits.index_add_(0, y, (logits.argmax(1) == y).float())
            count.index_add_(0, y, torch.ones(len(y)))
    return loss / count, hits.double() / count


@pytest.mark.parametrize(
    ("model", "layer", "shape"),
    [
        (lambda: models.MLP(in_features=20, hidden=(16,)), "hidden.0", (20,)),
        (lambda: models.MLP(in_features=20, hidden=(16, 12, 8)), "hidden.0", (20,)),
        (lambda: models.MLP(in_features=20, hidden=(16, 12, 8)), "hidden.2", (20,)),
        (
            lambda: models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7),
            "conv3",
            (1, 8, 8),
        ),
    ],
)
@pytest.mark.parametrize("scale", [1.0, 30.0])  # 30: the exact-maximum path of the last hidden layer
def test_per_class_loss_and_accuracy_equal_the_pruned_models(model, layer, shape, scale):
    from netshrink.compress import prune

    torch.manual_seed(4)
    net = model().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale**0.5)
    loader = batches(shape, n=3, size=50)
    nodes = torch.tensor([4, 0, 2])
    result = importance.ablate(net, layer, loader, nodes=nodes, chunk=2)
    assert result.class_loss.shape == result.class_acc.shape == (4, 10)
    base_loss, base_acc = per_class(net, loader)
    assert torch.allclose(result.class_loss[0], base_loss, atol=1e-5, equal_nan=True)
    assert torch.allclose(result.class_acc[0], base_acc, equal_nan=True)
    n = net.get_submodule(layer).weight.shape[0]
    for row, j in enumerate(nodes.tolist(), start=1):
        pruned = prune.remove_nodes(net, layer, torch.arange(n) != j)
        loss, acc = per_class(pruned, loader)
        assert torch.allclose(result.class_loss[row], loss, rtol=1e-4, atol=1e-4, equal_nan=True)
        assert torch.allclose(result.class_acc[row], acc, equal_nan=True)
    lean = importance.ablate(net, layer, loader, nodes=nodes, accuracy=False)
    assert lean.correct is None
    assert torch.allclose(lean.loss_change, result.loss_change, rtol=1e-4, atol=1e-4)


def test_bad_node_indices_are_refused():
    net = models.MLP(in_features=20, hidden=(16,))
    with pytest.raises(ValueError, match=r"nodes must be indices in 0..15"):
        importance.ablate(net, "hidden.0", batches((20,), n=1), nodes=[16])


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
    from netshrink.compress import prune

    net, val = trained_mlp()
    result = search.prune_exhaustive(net, "hidden.0", val)
    steps = result.steps
    assert len(steps) > 1, "the teacher task leaves some worse nodes"
    assert (steps["loss_change"].iloc[1:] <= 0).all()
    assert (steps["val_loss"].diff().dropna() <= 1e-9).all()
    assert result.model.hidden[0].out_features == result.nodes_left == 24 - (len(steps) - 1)
    assert (importance.loss_change(result.model, "hidden.0", val) > 0).all()
    assert outputs_equal(result.model, prune.remove_nodes(net, "hidden.0", result.keep))
    # every step evaluates every node still there
    assert result.evaluations == sum(range(result.nodes_left, 25))
    assert net.hidden[0].out_features == 24, "the original is untouched"


def test_greedy_pruning_removes_only_harmless_nodes_and_tests_fewer():
    from netshrink.compress import prune

    net, val = trained_mlp()
    greedy = search.prune_greedy(net, "hidden.0", val, important=0.01)
    exhaustive = search.prune_exhaustive(net, "hidden.0", val)
    assert (greedy.steps["loss_change"].iloc[1:] <= 0).all()
    assert (greedy.steps["val_loss"].diff().dropna() <= 1e-9).all()
    assert greedy.nodes_left < 24
    assert greedy.evaluations < exhaustive.evaluations
    assert outputs_equal(greedy.model, prune.remove_nodes(net, "hidden.0", greedy.keep))
    # the final pass removed nothing: every node tested in it raises the loss
    change = importance.loss_change(greedy.model, "hidden.0", val)
    assert (change > 0).sum() >= 1 and greedy.steps["node"].is_unique


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
    loader = batches((1, 8, 8), n=2)
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
        assert ((after.class_loss[0] - before.class_loss[0]).nan_to_num(0) <= tol + 1e-9).all()
    else:
        assert after.loss[0] - before.loss[0] <= tol + 1e-9
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
    from netshrink.compress import prune

    torch.manual_seed(6)
    net = model().eval()
    loader = batches(shape, n=2, size=40)
    n = net.get_submodule(layer).weight.shape[0]
    keep = search.prefix_masks(torch.randperm(n), [0, 1, 3, n - 1])
    sweep = importance.ablate_masks(net, layer, loader, keep=keep, chunk=3)
    for row, mask in enumerate(keep, start=1):
        loss, acc = per_class(prune.remove_nodes(net, layer, mask), loader)
        assert torch.allclose(sweep.class_loss[row], loss, atol=1e-5, equal_nan=True)
        assert torch.allclose(sweep.class_acc[row], acc, equal_nan=True)
    with pytest.raises(ValueError, match=r"keep must have shape \(masks, "):
        importance.ablate_masks(net, layer, loader, keep=keep[:, :-1])


def test_exhaustive_pruning_can_stop_at_a_multiple_of_a_width():
    net, val = trained_mlp()
    result = search.prune_exhaustive(net, "hidden.0", val, multiple=8)
    assert result.nodes_left % 8 == 0 and result.nodes_left < 24
    with pytest.raises(ValueError, match="multiple=0 must be a positive integer"):
        search.prune_exhaustive(net, "hidden.0", val, multiple=0)


@pytest.mark.parametrize("tol", [float("nan"), float("inf"), -1e-9, "0.1", None])
def test_classify_refuses_a_tolerance_that_is_not_a_finite_number(tol):
    with pytest.raises(ValueError, match=r"tol=.* must be a finite number >= 0"):
        importance.classify(torch.zeros(3), tol=tol)


def test_loss_change_on_an_empty_loader_is_an_error_not_nan():
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    with pytest.raises(ValueError, match=r"loader yielded no examples"):
        importance.loss_change(net, "hidden.0", [])
    with pytest.raises(ValueError, match=r"loader yielded no examples"):
        naive.loss_change_naive(net, "hidden.0", [])


def test_layer_names_checks_and_node_counts():
    net = models.MLP(in_features=20, hidden=(16, 8))
    assert importance.prunable_layers(net) == ["hidden.0", "hidden.1"]
    assert importance.check_layer(net, "hidden.1") is net.hidden[1]
    with pytest.raises(ValueError, match=r"layer='out' .*allowed.*hidden.0, hidden.1"):
        importance.check_layer(net, "out")
    assert importance.node_count(net.hidden[0]) == 16 and importance.node_count(nn.Conv2d(3, 5, 3)) == 5
    assert importance.check_tol("tol", 0) == 0.0
    for bad in (-1, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(ValueError, match="tol=.* must be a finite number >= 0"):
            importance.check_tol("tol", bad)
    assert prune.hidden_layers(net) == ["hidden.0", "hidden.1"]
    assert prune.check_keep(torch.ones(16, dtype=torch.bool), 16).all()
    with pytest.raises(ValueError, match="keep"):
        prune.check_keep(torch.ones(15, dtype=torch.bool), 16)
