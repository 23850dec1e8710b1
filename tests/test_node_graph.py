"""Every node operation finds its layers in the traced graph (`compress.graph.node_path`): the
next layer is the one the data reaches, the output layer the one that feeds the output, and
what the graph cannot follow is refused before any work, naming the layer and the operation."""

import re

import pytest
import torch
from torch import nn

from netshrink import checks
from netshrink.compress import graph, importance, masking, prune


class InOrder(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.mid, self.out = nn.Linear(6, 5), nn.Linear(5, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.out(torch.relu(self.mid(torch.relu(self.hidden(x)))))


class OutOfOrder(InOrder):
    """The same layers registered hidden, out, mid; the data still flows hidden -> mid -> out."""

    def __init__(self):
        nn.Module.__init__(self)
        self.hidden, self.out, self.mid = nn.Linear(6, 5), nn.Linear(4, 3), nn.Linear(5, 4)


def _pair():
    torch.manual_seed(0)
    ordered = InOrder().eval()
    shuffled = OutOfOrder().eval()
    shuffled.load_state_dict(ordered.state_dict())
    assert [n for n, _ in shuffled.named_children()] == ["hidden", "out", "mid"]
    return ordered, shuffled


def _keep(model, layer):
    keep = torch.ones(model.get_submodule(layer).out_features, dtype=torch.bool)
    keep[1] = False
    return keep


X = torch.randn(12, 6, generator=torch.Generator().manual_seed(1))
Y = torch.randint(0, 3, (12,), generator=torch.Generator().manual_seed(2))

OPERATIONS = {  # name: (what it is called in refusals, the call, what to compare)
    "remove_nodes": ("node removal", lambda m, layer, data: prune.remove_nodes(m, layer, _keep(m, layer))(X)),
    "mask_nodes": ("node masking", lambda m, layer, data: prune.mask_nodes(m, layer, _keep(m, layer))(X)),
    "evaluate_masks": (
        "mask evaluation",
        lambda m, layer, data: masking.evaluate_masks(m, layer, data, keep=_keep(m, layer)).loss_sum,
    ),
    "loss_change": ("node importance", lambda m, layer, data: importance.loss_change(m, layer, data)),
    "taylor": ("node importance", lambda m, layer, data: importance.taylor(m, layer, data)),
    "check_layer": ("node removal", lambda m, layer, data: checks.check_layer(m, layer).weight),
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("layer", ["hidden", "mid"])
def test_a_model_registered_out_of_order_gives_the_same_result_as_in_order(operation, layer):
    ordered, shuffled = _pair()
    run = OPERATIONS[operation][1]
    expected, got = run(ordered, layer, [(X, Y)]), run(shuffled, layer, [(X, Y)])
    assert torch.allclose(got, expected, atol=1e-6)


def test_the_graph_names_the_next_and_the_output_layer_of_an_out_of_order_model():
    _, shuffled = _pair()
    path = graph.node_path(shuffled, "hidden", "node removal")
    assert path == graph.LayerPath("hidden", None, "mid", "out")
    assert checks.prunable_layers(shuffled) == graph.node_layers(shuffled) == ["hidden", "mid"]
    evaluation = masking.evaluate_masks(shuffled, "mid", [(X, Y)], keep=_keep(shuffled, "mid"))
    assert evaluation.count.shape == (3,)  # the classes of `out`, not the width of `mid`
    assert graph.output_layer(shuffled) == "out"
    with pytest.raises(ValueError, match="the model's output does not come from one Conv2d or Linear"):
        graph.output_layer(NoSuccessor())


class ResidualMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 5), nn.Linear(5, 5), nn.Linear(5, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(torch.relu(self.b(h)) + h)


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 5), nn.Linear(6, 5), nn.Linear(10, 3)

    def forward(self, x):
        return self.c(torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1))


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.a, self.c = nn.Linear(6, 5), nn.Linear(5, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.c(torch.relu(self.a(torch.relu(self.a(torch.relu(self.first(x)))))))


class Unused(InOrder):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 5)  # registered, never called


class NoSuccessor(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.c = nn.Linear(6, 5), nn.Linear(6, 3)

    def forward(self, x):
        return self.c(x), torch.relu(self.a(x))  # a's nodes reach the output with no layer after


class Untraceable(InOrder):
    def __init__(self):
        super().__init__()
        self.a = self.hidden

    def forward(self, x):
        h = torch.relu(self.a(x))
        if h.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            h = h * 2
        return self.out(torch.relu(self.mid(h)))


REFUSED = {  # model, layer, what the refusal says the graph shows
    "residual add": (ResidualMLP, "a", r"goes to Linear 'b', an addition \(residual add\)"),
    "residual add after b": (ResidualMLP, "b", r"goes to an addition \(residual add\)"),
    "concatenation": (Concat, "a", "goes to a concatenation"),
    "layer called twice": (Twice, "a", "runs 2 times in one forward pass"),
    "layer never called": (Unused, "a", "runs 0 times in one forward pass"),
    "no weighted successor": (NoSuccessor, "a", "reaches the model's output with no Conv2d or Linear"),
    "output layer": (InOrder, "out", "is the output layer"),
    "untraceable model": (Untraceable, "a", "cannot trace the model with torch.fx"),
}


class _Untouchable:
    """A loader that fails when read: a refusal must come before any computation."""

    def __iter__(self):
        raise AssertionError("the data was read before the refusal")


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("case", REFUSED)
def test_what_the_graph_cannot_follow_is_refused_before_any_work(operation, case, monkeypatch):
    make, layer, shows = REFUSED[case]
    torch.manual_seed(0)
    model = make().eval()
    name, run = OPERATIONS[operation]
    monkeypatch.setattr(prune.copy, "deepcopy", lambda *_: pytest.fail("copied before the refusal"))
    with pytest.raises(ValueError, match=f"layer='{layer}'") as err:
        run(model, layer, _Untouchable())
    message = str(err.value)
    assert re.search(shows, message) and name in message, message


def test_a_model_changed_after_a_trace_is_traced_again():
    _, shuffled = _pair()
    assert graph.node_path(shuffled, "hidden", "node removal").next == "mid"
    shuffled.mid = nn.Linear(5, 4)  # a new module object under the same name: traced again
    assert graph.node_path(shuffled, "hidden", "node removal").next == "mid"
    shuffled.mid = nn.Sequential(nn.Linear(5, 4), nn.ReLU())  # the path changes: traced again
    assert graph.node_path(shuffled, "hidden", "node removal").next == "mid.0"
