"""Filter pruning and its sensitivity on any traceable model whose convs feed, through batch
norm, activations, pooling, dropout or a flatten, the next Conv2d or Linear: torchvision's
vgg11_bn, a user's nn.Sequential, the book's VGG-16; refused, naming the layer, where the
graph goes elsewhere (a residual add)."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from netshrink import models
from netshrink.compress import filters, graph, prune, sensitivity


def _with_statistics(model):
    """`model` with batch-norm statistics of real size (a few training-mode passes), in eval mode."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 32, 32))
    return model.eval()


def _user_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(48, 10),
    )  # fmt: skip


MODELS = {
    "torchvision vgg11_bn": lambda: torchvision.models.vgg11_bn(num_classes=10),
    "user's Sequential": _user_net,
    "book's VGG-16": lambda: models.vgg16(width=0.125),
}


def _masked(model, path, keep):
    """`model` with the pruned filters' activations zeroed after their batch norm (or conv)."""
    masked = copy.deepcopy(model)
    where = masked.get_submodule(path.norm or path.layer)
    where.register_forward_hook(lambda m, i, out: out * keep.view(1, -1, 1, 1))
    return masked


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_removing_filters_equals_zeroing_them_in_every_model(make):
    model = _with_statistics(make())
    convs = graph.prunable_convs(model)
    assert convs == models.conv_layers(model)[: len(convs)] and len(convs) == len(models.conv_layers(model))
    x = torch.rand(2, 3, 32, 32)
    for layer in (convs[0], convs[-1]):  # the first, and the last (into the classifier, through a flatten)
        conv = model.get_submodule(layer)
        keep = torch.rand(conv.out_channels, generator=torch.Generator().manual_seed(1)) > 0.4
        path = graph.follow_filters(model, layer)
        assert path.norm is not None
        pruned = prune.remove_filters(model, layer, keep)
        assert torch.allclose(pruned(x), _masked(model, path, keep)(x), atol=1e-4), layer
        assert pruned.get_submodule(layer).out_channels == int(keep.sum())
        assert models.count_parameters(pruned) < models.count_parameters(model)


def test_a_conv_without_batch_norm_is_followed_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 28 * 28, 10)).eval()  # fmt: skip
    assert graph.follow_filters(net, "0") == graph.FilterPath("0", None, "2", "5")
    keep = torch.tensor([True, False, True, True, False, True])
    x = torch.rand(2, 3, 32, 32)
    expected = _masked(net, graph.FilterPath("0", None, "2", "5"), keep)(x)
    assert torch.allclose(prune.remove_filters(net, "0", keep)(x), expected, atol=1e-5)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)) + y)  # a residual add
        return self.head(y.mean((2, 3)))


def test_a_graph_filter_pruning_cannot_follow_is_refused_naming_the_layer():
    model = Residual()
    with pytest.raises(ValueError, match=r"layer='conv1': its output goes to .*one consumer at a time"):
        prune.remove_filters(model, "conv1", torch.ones(8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"layer='conv2': its output goes to an addition \(residual add\)"):
        prune.remove_filters(model, "conv2", torch.ones(8, dtype=torch.bool))
    assert graph.prunable_convs(model) == []
    with pytest.raises(
        ValueError, match=r"layer='head' is not a conv layer of the model; allowed values: conv1, conv2"
    ):
        graph.follow_filters(model, "head")


def test_sensitivity_of_every_layer_and_rate_in_one_call():
    model = _with_statistics(_user_net())
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.rand(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(2)
    ]
    found = sensitivity.filter_sensitivity(model, batches, ["0", "4"], [0.0, 0.5])
    assert found.accuracy.shape == found.filters_left.shape == (2, 2)
    assert found.filters_left.tolist() == [[8, 4], [12, 6]]
    with torch.no_grad():
        base = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches) / 32
    assert found.accuracy[:, 0].tolist() == [base, base], "rate 0 removes nothing"
    with pytest.raises(ValueError, match="loader yielded no examples"):
        sensitivity.filter_sensitivity(model, [], ["0"], [0.5])


ACCURACY = {  # layer -> {rate: accuracy (%) without retraining}
    "a": {0.1: 91.0, 0.5: 89.5, 0.9: 60.0},
    "b": {0.1: 88.0, 0.5: 80.0, 0.9: 20.0},
}


def test_rates_within_a_tolerance_and_the_tolerances_whose_rates_differ():
    assert filters.rates_within(ACCURACY, 90.0, 1.0, 0.9) == {"a": 0.5, "b": 0.0}
    assert filters.rates_within(ACCURACY, 90.0, 100.0, 0.5) == {"a": 0.5, "b": 0.5}
    found = filters.tolerance_candidates(ACCURACY, 90.0, 5.0, 0.9)
    assert list(found.values())[-1] == {"a": 0.9, "b": 0.9}
    assert len({tuple(r.values()) for r in found.values()}) == len(found)  # each set of rates once
    assert list(found) == sorted(found) and list(found)[0] == 5.0
    with pytest.raises(ValueError, match=r"prune_tol=0 is out of range; allowed: a number above 0"):
        filters.tolerance_candidates(ACCURACY, 90.0, 0, 0.9)


def test_the_smallest_tolerance_fast_enough_is_chosen_and_an_unreachable_target_refused():
    assert filters.first_fast_enough({5.0: 1.1, 10.0: 1.6, 15.0: 2.0}, 1.5, 0.9) == 10.0
    with pytest.raises(ValueError, match=r"target_speedup=3 is out of reach: .* measured 2.00x"):
        filters.first_fast_enough({5.0: 1.1, 15.0: 2.0}, 3, 0.9)


def test_prune_filters_removes_the_rates_of_each_layer_in_turn():
    model = _with_statistics(_user_net())
    convs = graph.prunable_convs(model)
    pruned = filters.prune_filters(model, {convs[0]: 0.5}, multiple_of=1)
    conv = model.get_submodule(convs[0])
    assert pruned.get_submodule(convs[0]).out_channels == conv.out_channels - round(0.5 * conv.out_channels)
    with pytest.raises(ValueError, match=r"layer='nope' is not a conv layer it can follow; allowed values"):
        filters.prune_filters(model, {"nope": 0.5})
