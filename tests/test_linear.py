"""Each decomposed linear layer (`compress.linear`) against the dense layer it replaces."""

import pytest
import torch
from conftest import relative_error
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netshrink import models
from netshrink.compress import decompose


@pytest.mark.parametrize("method", decompose.LINEAR_METHODS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_at_full_rank_gives_the_dense_outputs(method, bias):
    torch.manual_seed(0)
    linear = nn.Linear(24, 20, bias=bias)
    spec = {
        "tucker1": {"rank": 20},
        "tucker2": {"rank": (20, 20)},
        "tt": {"rank": [10, 8], "in_modes": [2, 3, 4], "out_modes": [5, 2, 2]},
    }[method]
    layer = decompose.decompose_layer(linear, method, **spec)
    x = torch.randn(7, 24)
    assert layer(x).shape == (7, 20)
    assert relative_error(layer(x), linear(x)) <= 1e-4


def test_tt_linear_never_forms_the_matrix_and_counts_its_cores():
    torch.manual_seed(0)
    linear = nn.Linear(800, 120)
    layer = decompose.tt_linear(linear, [5, 10, 16], [4, 5, 6], 4)
    cores = 1 * 5 * 4 * 4 + 4 * 10 * 5 * 4 + 4 * 16 * 6 * 1
    assert models.count_parameters(layer) == cores + 120
    x = torch.randn(3, 800)
    with FlopCounterMode(display=False) as counter:
        layer(x)
    assert counter.get_total_flops() < 2 * 3 * 800 * 120, "contracting cores beats the dense product"
    dense = torch.einsum("aijb,bklc,cmnd->ikmjln", *[c.detach() for c in layer.cores]).reshape(800, 120)
    assert torch.allclose(layer(x), x @ dense + linear.bias, atol=1e-4)


@pytest.mark.parametrize(
    "function, rank", [(decompose.tucker1_linear, 20), (decompose.tucker2_linear, (24, 20))]
)
def test_each_linear_function_is_exact_at_full_rank(function, rank):
    torch.manual_seed(0)
    linear = nn.Linear(24, 20)
    x = torch.randn(3, 24)
    assert relative_error(function(linear, rank)(x), linear(x)) <= 1e-4
