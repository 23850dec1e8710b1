import numpy as np
import pytest
import torch

from netshrink import importance, models


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
    hooked = importance.ablation_losses(net, layer, loader, chunk=chunk)
    slow = importance.loss_change_naive(net, layer, loader)
    assert fast.shape == slow.shape == (net.get_submodule(layer).weight.shape[0],)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(hooked[1] - hooked[0], slow, atol=1e-5)


def test_zeroing_a_node_equals_removing_its_weights():
    torch.manual_seed(1)
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    loader = batches((20,))
    change = importance.loss_change(net, "hidden.0", loader)
    from netshrink import prune

    keep = torch.ones(16, dtype=torch.bool)
    keep[3] = False
    pruned = prune.remove_nodes(net, "hidden.0", keep)
    base = importance.ablation_losses(net, "hidden.0", loader, nodes=[0])[0]
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
    rho = importance.spearman(
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
