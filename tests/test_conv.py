"""Each decomposed conv layer (`compress.conv`) against the dense conv it replaces, parametrised
over the methods, as tensorly-torch tests its layers: exact at full rank in every layout, smaller
and cheaper at low rank."""

import pytest
import torch
from conftest import relative_error
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netshrink import models
from netshrink.compress import decompose

CONV_SHAPES = [
    # (in, out, kernel, stride, padding, dilation, bias)
    (6, 8, 3, 1, 1, 1, True),
    (5, 7, 5, 2, 2, 1, False),
    (4, 6, 3, 1, 0, 2, True),
    (3, 9, (3, 5), (2, 1), (1, 2), 1, True),
]


def full_rank(method, conv):
    """The ranks at which `method` is exact on `conv`."""
    T, S, kh, kw = conv.weight.shape
    return {
        "tucker2": {"rank": (S, T)},
        "tucker1": {"rank": T},
        "cp": {"rank": min(S, T) * kh * kw, "n_iter_max": 1000},
        "tt": {"rank": (S, min(S * kh, kw * T), T)},
        "jaderberg": {"rank": min(S * kh, T * kw)},
        "btd": {"rank": (S, T), "n_blocks": 2},
    }[method]


@pytest.mark.parametrize("method", decompose.CONV_METHODS)
@pytest.mark.parametrize("shape", CONV_SHAPES, ids=lambda s: "x".join(map(str, s[:3])))
def test_conv_at_full_rank_gives_the_dense_outputs(method, shape):
    s, t, k, stride, padding, dilation, bias = shape
    torch.manual_seed(0)
    conv = nn.Conv2d(s, t, k, stride=stride, padding=padding, dilation=dilation, bias=bias)
    x = torch.randn(2, s, 15, 13)
    spec = full_rank(method, conv)
    layer = decompose.decompose_layer(conv, method, **spec)
    assert isinstance(layer, nn.Sequential)
    assert layer(x).shape == conv(x).shape
    assert relative_error(layer(x), conv(x)) <= 1e-4
    x_last = x.contiguous(memory_format=torch.channels_last)
    assert relative_error(layer(x_last), conv(x)) <= 1e-4, "and in the channels-last layout"


@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_conv_equals_the_1x1_conv_in_every_layout_with_its_gradients_and_flops(bias):
    torch.manual_seed(0)
    pointwise = decompose.PointwiseConv(6, 9, bias=bias)
    conv = nn.Conv2d(6, 9, 1, bias=bias)
    conv.load_state_dict(pointwise.state_dict())
    x = torch.randn(4, 6, 7, 5)
    inputs = {
        "NCHW": x,
        "channels last": x.contiguous(memory_format=torch.channels_last),
        "strided view": torch.randn(4, 6, 7, 10)[..., ::2],
        "unbatched": x[0],
    }
    for name, xi in inputs.items():
        assert torch.allclose(pointwise(xi), conv(xi), atol=1e-6), name
    pointwise(x).square().sum().backward()
    conv(x).square().sum().backward()
    assert torch.allclose(pointwise.weight.grad, conv.weight.grad, atol=1e-5)
    if bias:
        assert torch.allclose(pointwise.bias.grad, conv.bias.grad, atol=1e-5)

    def flops(m):
        with FlopCounterMode(display=False) as counter:
            m(x)
        return counter.get_total_flops()

    assert flops(pointwise) == flops(conv) == 2 * 4 * 6 * 9 * 7 * 5


def test_decompositions_build_their_1x1_convs_as_pointwise_convs():
    conv = nn.Conv2d(8, 12, 3, padding=1)
    layer = decompose.tucker2_conv(conv, (4, 4))
    assert [type(m) for m in layer] == [decompose.PointwiseConv, nn.Conv2d, decompose.PointwiseConv]


@pytest.mark.parametrize("method", decompose.CONV_METHODS)
def test_conv_at_low_rank_is_smaller_and_cheaper(method):
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 48, 3, padding=1)
    ranks = {"tucker2": (8, 8), "tucker1": 8, "cp": 16, "tt": (8, 8, 8), "jaderberg": 12, "btd": (4, 4)}
    rank = ranks[method]
    options = {"n_blocks": 2} if method == "btd" else {}
    layer = decompose.decompose_layer(conv, method, rank, **options)
    x = torch.randn(1, 32, 16, 16)

    def flops(m):
        with FlopCounterMode(display=False) as counter:
            m(x)
        return counter.get_total_flops()

    assert models.count_parameters(layer) < models.count_parameters(conv) / 3
    assert flops(layer) < flops(conv) / 3
    err = relative_error(layer(x), conv(x))
    assert 0 < err < 1.5, "an approximation, not garbage"


def test_cp_recovers_a_kernel_of_known_cp_rank():
    g = torch.Generator().manual_seed(0)
    factors = [torch.randn(d, 3, generator=g) for d in (10, 6, 3, 3)]
    conv = nn.Conv2d(6, 10, 3, padding=1)
    conv.weight.data = torch.einsum("tr,sr,yr,xr->tsyx", *factors)
    layer = decompose.cp_conv(conv, 3)
    x = torch.randn(2, 6, 9, 9)
    assert relative_error(layer(x), conv(x)) <= 1e-4
    assert len(layer) == 4 and all(isinstance(m, nn.Conv2d) for m in layer)
    assert layer[1].groups == 3 and layer[2].groups == 3


@pytest.mark.parametrize(
    "function, method",
    [(decompose.tucker2_conv, "tucker2"), (decompose.tucker1_conv, "tucker1"), (decompose.tt_conv, "tt"),
     (decompose.jaderberg_conv, "jaderberg"), (decompose.btd_conv, "btd"), (decompose.cp_conv, "cp")],
    ids=lambda f: getattr(f, "__name__", f),
)  # fmt: skip
def test_each_conv_function_is_the_method_decompose_layer_names(function, method):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    spec = full_rank(method, conv)
    rank, options = spec.pop("rank"), spec
    direct, named = function(conv, rank, **options), decompose.decompose_layer(conv, method, rank, **options)
    x = torch.randn(2, 4, 8, 8)
    assert [type(m) for m in direct] == [type(m) for m in named]
    assert relative_error(direct(x), conv(x)) <= 1e-4 and relative_error(named(x), conv(x)) <= 1e-4


def test_cp_layers_build_the_four_convs_from_given_factors():
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    weights = torch.ones(2)
    factors = [torch.randn(d, 2) for d in (5, 3, 3, 3)]  # (T, S, kh, kw) modes, rank 2
    layer = decompose.cp_layers(conv, weights, factors)
    kernel = torch.einsum("tr,sr,hr,wr->tshw", *factors)
    x = torch.randn(1, 3, 6, 6)
    expected = torch.nn.functional.conv2d(x, kernel, padding=1)
    assert len(layer) == 4 and relative_error(layer(x), expected) <= 1e-5
