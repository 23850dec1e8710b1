"""The next-layer path of the single-node ablation: each removed node's contribution subtracted
from the next layer's output, checked against the layer with that input zeroed, and used only
where the model allows it."""

import pytest
import torch
from torch import nn

from netshrink import models
from netshrink.compress import hooked, importance, masking, naive, search
from netshrink.compress.next_layer import NextLayer, find_next_layer

NEXT_LAYERS = {
    "conv 3x3, padding 1": (nn.Conv2d(6, 5, 3, padding=1), (6, 9, 9), 1),
    "conv 5x3, stride 2, dilation 2": (
        nn.Conv2d(6, 5, (5, 3), stride=2, padding=(2, 1), dilation=2),
        (6, 11, 9),
        1,
    ),
    "conv without bias": (nn.Conv2d(6, 4, 1, bias=False), (6, 5, 5), 1),
    "linear": (nn.Linear(6, 7), (6,), 1),
    "linear after a flatten of 6 x 2 x 3": (nn.Linear(36, 7), (36,), 6),
}


@pytest.mark.parametrize("cumulative", [False, True], ids=["each node alone", "a sweep"])
@pytest.mark.parametrize("case", NEXT_LAYERS, ids=str)
def test_each_output_without_its_input_nodes_equals_the_layer_on_those_nodes_zeroed(case, cumulative):
    torch.manual_seed(0)
    module, shape, span = NEXT_LAYERS[case]
    nxt = NextLayer(module, span)
    x = torch.randn(3, *shape)
    nodes = torch.tensor([4, 0, 2, 5])
    with torch.no_grad():
        got = nxt.without_each(x, module(x), nodes, cumulative)
        for row in range(len(nodes)):
            keep = torch.ones(6, dtype=torch.bool)
            keep[nodes[: row + 1] if cumulative else nodes[row]] = False  # a sweep: the first row + 1
            want = module(x * nxt.input_mask(keep))
            assert got[row].shape == want.shape
            assert torch.allclose(got[row], want, atol=1e-5), f"row {row}"


def _conv4():
    torch.manual_seed(0)
    return models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7).eval()


def test_the_next_layer_of_each_conv4_layer_is_found_with_its_span():
    net, sample = _conv4(), torch.randn(4, 1, 8, 8)
    found = {
        layer: find_next_layer(net, layer, sample) for layer in ("conv1", "conv2", "conv3", "conv4", "fc")
    }
    assert {k: (v.module, v.span) for k, v in found.items()} == {
        "conv1": (net.conv2, 1),
        "conv2": (net.conv3, 1),  # through ReLU and max-pooling
        "conv3": (net.conv4, 1),
        "conv4": (net.fc, 4),  # 3 channels of 2 x 2 flattened
        "fc": (net.out, 1),
    }


def _one_positive_channel():
    """Zero in is zero out after batch norm and ReLU for every channel but the last."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.Flatten(), nn.Linear(12, 10)
    )
    model[1].running_mean.copy_(torch.tensor([1.0, 1.0, 1.0, -1.0]))
    return model


MODELS_WITHOUT_THE_PATH = {
    "batch norm after the conv": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.Flatten(), nn.Linear(12, 10)
    ),
    "a grouped next conv": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(16, 10)
    ),
    "a batch norm that makes one channel positive": lambda: _one_positive_channel(),
    "a sigmoid between (keeps no zeros)": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.Sigmoid(), nn.Conv2d(4, 3, 3), nn.Flatten(), nn.Linear(12, 10)
    ),
}


@pytest.mark.parametrize("case", MODELS_WITHOUT_THE_PATH, ids=str)
def test_models_where_zeroing_the_next_input_is_not_the_same_fall_back_to_the_exact_hooks(case):
    torch.manual_seed(0)
    model = MODELS_WITHOUT_THE_PATH[case]().eval()
    if isinstance(model, nn.Sequential) and isinstance(model[1], nn.BatchNorm2d):
        model[1].running_mean.uniform_(-1.5, -0.5)  # zero in, positive out: ReLU keeps it
    first = "0"
    x, y = torch.randn(6, 1, 6, 6), torch.randint(0, 10, (6,))
    assert find_next_layer(model, first, x[:4]) is None
    batches = [(x, y)]
    assert torch.allclose(
        importance.loss_change(model, first, batches),
        naive.loss_change_naive(model, first, batches),
        atol=1e-6,
    )


@pytest.mark.parametrize("layer", ["conv1", "conv2", "conv3", "conv4", "fc"])
@pytest.mark.parametrize("budget", [8 * 6 * 8, 2**18], ids=["passes of a row", "one pass"])
def test_the_ablations_through_the_next_layer_equal_one_pass_per_node(monkeypatch, layer, budget):
    monkeypatch.setattr(hooked, "pass_budget", lambda device: budget)
    net = _conv4()
    x, y = torch.randn(10, 1, 8, 8), torch.randint(0, 10, (10,))
    batches = [(x[:7], y[:7]), (x[7:], y[7:])]
    got = importance.ablate(net, layer, batches)
    want = naive.loss_change_naive(net, layer, batches)
    assert torch.allclose(got.loss_change, want, atol=1e-6)
    for j in range(len(want)):  # accuracy too: one masked pass per node
        keep = torch.ones(len(want), dtype=torch.bool)
        keep[j] = False
        single = importance.ablate(net, layer, batches, nodes=[j])
        assert torch.equal(got.correct[j], single.correct[0])


class InputAfterTheLayers(nn.Module):
    """A forward that uses its input again after the layers: masked passes must rerun it."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.out = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 3, 3), nn.Linear(12, 10)

    def forward(self, x):
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.out(h.flatten(1) + x.mean())


def test_masked_passes_replay_the_intact_pass_only_where_the_model_allows_it():
    x, y = torch.randn(5, 1, 6, 6), torch.randint(0, 10, (5,))
    net = _conv4()
    assert hooked.replays(net, net.conv2, torch.randn(2, 1, 8, 8))
    model = InputAfterTheLayers().eval()
    assert not hooked.replays(model, model.conv1, x[:1])
    assert torch.allclose(
        importance.loss_change(model, "conv1", [(x, y)]),
        naive.loss_change_naive(model, "conv1", [(x, y)]),
        atol=1e-6,
    )


@pytest.mark.parametrize("layer", ["conv2", "conv4"])
def test_next_layer_sums_equal_hooked_sums_per_class(layer):
    net = _conv4()
    x, y = torch.randn(9, 1, 8, 8), torch.randint(0, 10, (9,))
    nodes = torch.tensor([2, 0, 1])
    keep = torch.ones(3, net.get_submodule(layer).out_channels, dtype=torch.bool)
    keep[torch.arange(3), nodes] = False
    nxt = find_next_layer(net, layer, x[:4])
    with torch.no_grad():
        fast = hooked.next_layer_sums(net, nxt, x, y, nodes, 2, 10, True)
        hooks = hooked.hooked_sums(net, net.get_submodule(layer), x, y, keep, 2, 10, True)
    assert fast[0].shape == (4, 10) and torch.allclose(fast[0], hooks[0], atol=1e-5)
    assert torch.equal(fast[1], hooks[1])


class SharedConv(nn.Module):
    """One conv run twice (shared weights)."""

    def __init__(self):
        super().__init__()
        self.conv, self.out = nn.Conv2d(3, 3, 3, padding=1), nn.Linear(3 * 25, 10)

    def forward(self, x):
        return self.out(torch.relu(self.conv(torch.relu(self.conv(x)))).flatten(1))


def test_a_layer_that_runs_twice_is_refused_naming_it():
    model = SharedConv().eval()
    batches = [(torch.randn(4, 3, 5, 5), torch.randint(0, 10, (4,)))]
    with pytest.raises(
        ValueError, match=r"layer='conv' runs 2 times in one forward pass; allowed: a layer that runs once"
    ):
        importance.loss_change(model, "conv", batches)
    with pytest.raises(ValueError, match="runs 2 times"):
        masking.evaluate_masks(model, "conv", batches, keep=torch.tensor([[True, False, False]]))
    with pytest.raises(ValueError, match="runs 2 times"):
        hooked.check_runs_once(model, "conv", batches[0][0])


def _masked_loss_by_hooks(model, layer, x, y, keep):
    with torch.no_grad():
        return hooked.hooked_sums(model, model.get_submodule(layer), x, y, keep, None, 10, True)


@pytest.mark.parametrize("layer", ["conv1", "conv3", "conv4", "fc"])
@pytest.mark.parametrize("budget", [8 * 6 * 8, 2**18], ids=["passes of a row", "one pass"])
def test_a_sweep_of_prefix_masks_runs_through_the_next_layer_with_the_same_sums(monkeypatch, layer, budget):
    net = _conv4()
    x, y = torch.randn(10, 1, 8, 8), torch.randint(0, 10, (10,))
    n = net.get_submodule(layer).weight.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    sweep = search.prefix_masks(order, range(1, n))
    want = _masked_loss_by_hooks(net, layer, x, y, sweep)
    used = []
    real = masking.next_layer_sums
    monkeypatch.setattr(masking, "next_layer_sums", lambda *a, **k: used.append(k) or real(*a, **k))
    monkeypatch.setattr(hooked, "pass_budget", lambda device: budget)
    got = masking.evaluate_masks(net, layer, [(x[:6], y[:6]), (x[6:], y[6:])], keep=sweep)
    assert used and all(k == {"cumulative": True} for k in used), "the sweep went through the next layer"
    assert torch.allclose(got.loss_sum, want[0][1:], atol=1e-5) and torch.equal(got.correct, want[1][1:])
    assert torch.allclose(got.intact_loss_sum, want[0][0], atol=1e-5)


def test_masks_that_are_not_a_sweep_use_the_hooks_on_the_layer(monkeypatch):
    net = _conv4()
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    order = torch.tensor([3, 1, 0, 2])
    not_sweeps = {
        "one node skipped": search.prefix_masks(order, [1, 3]),
        "not nested": torch.tensor(
            [[True, False, True, True, True, True], [False, True, False, True, True, True]]
        ),
        "first removes two": search.prefix_masks(torch.tensor([5, 4, 3, 2, 1, 0]), [2, 3]),
    }
    monkeypatch.setattr(masking, "next_layer_sums", lambda *a, **k: pytest.fail("not a sweep"))
    for name, keep in not_sweeps.items():
        keep = (
            keep if keep.shape[1] == 6 else torch.cat([keep, torch.ones(len(keep), 2, dtype=torch.bool)], 1)
        )
        got = masking.evaluate_masks(net, "conv2", [(x, y)], keep=keep)
        assert torch.allclose(
            got.loss_sum, _masked_loss_by_hooks(net, "conv2", x, y, keep)[0][1:], atol=1e-5
        ), name
