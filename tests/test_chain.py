"""Node removal, masks and the loss-change oracle on a user's own nn.Sequential MLP, tested
against the dense model and the one-pass-per-node loop."""

import pytest
import torch
from torch import nn

from netshrink import models
from netshrink.compress import chain, importance, masking, naive, prune


def batches(n=2, size=40, features=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, features, generator=g), torch.randint(0, 10, (size,), generator=g))
        for _ in range(n)
    ]


SEQUENTIALS = {
    "relu": lambda: nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 10)),
    "deep tanh": lambda: nn.Sequential(
        nn.Linear(20, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 12), nn.GELU(), nn.Linear(12, 10)
    ),  # fmt: skip
    "no bias": lambda: nn.Sequential(
        nn.Linear(20, 16, bias=False), nn.LeakyReLU(0.1), nn.Linear(16, 10, bias=False)
    ),
}


@pytest.mark.parametrize("make", SEQUENTIALS.values(), ids=SEQUENTIALS)
def test_the_chain_view_runs_the_model(make):
    torch.manual_seed(0)
    net = make().eval()
    view = chain.linear_chain(net)
    x = torch.randn(5, 20)
    assert view.hidden == [n for n, m in net.named_children() if isinstance(m, nn.Linear)][:-1]
    for index in range(len(view.hidden)):
        z = view.linears[index + 1](view.activations(index, x))
        assert torch.allclose(view.forward_from(index, z), net(x), atol=1e-6)


@pytest.mark.parametrize("make", SEQUENTIALS.values(), ids=SEQUENTIALS)
def test_masks_removal_and_the_oracle_on_a_sequential_equal_the_dense_model(make):
    torch.manual_seed(0)
    net = make().eval()
    loader = batches()
    for layer in chain.linear_chain(net).hidden:
        n = net.get_submodule(layer).out_features
        keep = torch.ones(n, dtype=torch.bool)
        keep[[1, 4]] = False
        smaller = prune.remove_nodes(net, layer, keep)
        assert smaller.get_submodule(layer).out_features == n - 2
        x = loader[0][0]
        assert torch.allclose(smaller(x), prune.mask_nodes(net, layer, keep)(x), atol=1e-5)
        masks = prune.random_node_masks(n, 3, 6, generator=torch.Generator().manual_seed(1))
        fast = masking.evaluate_masks(net, layer, loader, keep=masks, chunk=4)
        slow = naive.evaluate_masks_naive(net, layer, loader, keep=masks)
        assert torch.allclose(fast.loss, slow.loss, atol=1e-5) and torch.equal(fast.acc, slow.acc)
        fast = importance.loss_change(net, layer, loader, chunk=5)
        assert torch.allclose(fast, naive.loss_change_naive(net, layer, loader), atol=1e-5)
        ablations = importance.ablate(net, layer, loader)
        assert torch.allclose(ablations.loss_change, fast, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)),
         r"module '1' \(BatchNorm1d\) breaks the chain of linear layers; supported: netshrink.models.MLP"),
        (nn.Sequential(nn.Linear(20, 10)), r"model has 1 linear layer\(s\); a chain needs at least 2"),
        (nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 10), nn.Softmax(1)),
         r"module '3' \(Softmax\) breaks the chain"),
        (nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 10), nn.Sigmoid()),
         r"the output layer '2' is followed by an activation"),
        (models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7), r"model is a Conv4Net"),
    ],
)  # fmt: skip
def test_a_model_that_is_no_chain_gets_an_error_naming_what_is_supported(model, message):
    with pytest.raises(ValueError, match=message):
        chain.linear_chain(model)
    with pytest.raises(ValueError, match=message):  # Algorithm 2 runs on chains only
        prune.shrink_randomly(model, "0", 1, batches())


def test_layer_names_of_a_sequential_are_checked():
    net = SEQUENTIALS["relu"]()
    with pytest.raises(
        ValueError, match=r"layer='3' is the output layer .*whose nodes are the classes.*allowed values: 1"
    ):
        masking.evaluate_masks(net, "3", batches(), keep=torch.ones(1, 10, dtype=torch.bool))
    with pytest.raises(
        ValueError, match=r"layer='2' has no nodes to remove \(not a Linear or Conv2d layer\); allowed values"
    ):
        masking.evaluate_masks(net, "2", batches(), keep=torch.ones(1, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"layer='hidden.0' does not exist; allowed values: 1"):
        prune.shrink_randomly(net, "hidden.0", 2, batches())


def test_the_package_mlp_is_a_chain_too():
    view = chain.linear_chain(models.MLP(in_features=20, hidden=(16, 8)))
    assert view.names == ("hidden.0", "hidden.1", "out") and view.nonnegative == (True, True)


@pytest.mark.parametrize(
    "make", [*SEQUENTIALS.values(), lambda: models.MLP(20, (16, 12), 10)], ids=[*SEQUENTIALS, "mlp"]
)
def test_masks_on_the_tail_of_cached_outputs_equal_masks_on_the_model(make):
    torch.manual_seed(0)
    net = make().train()  # dropout must be off in the cached outputs too
    loader = batches()
    view = chain.linear_chain(net)
    for index, layer in enumerate(view.hidden):
        n = net.get_submodule(layer).out_features
        masks = prune.random_node_masks(n, 3, 5, generator=torch.Generator().manual_seed(2))
        outputs = chain.layer_outputs(net, view, index, loader)
        assert outputs[0][0].shape == (40, n) and torch.equal(outputs[0][1], loader[0][1])
        on_tail = masking.evaluate_masks(chain.tail(view, index), "0", outputs, keep=masks)
        on_model = masking.evaluate_masks(net, layer, loader, keep=masks)
        assert torch.allclose(on_tail.loss, on_model.loss, atol=1e-6) and torch.equal(
            on_tail.acc, on_model.acc
        )
    assert net.training, "the model's mode is restored"
