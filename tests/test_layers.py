"""The building blocks the decomposed layers share: checks, copies of a conv's geometry, bias."""

import pytest
import torch
from torch import nn

from netshrink.compress import layers


def test_rank_checks_name_the_parameter_and_the_range():
    assert layers.check_rank("rank", 3, 4) == 3
    for bad in (0, 5, True, 2.0):
        with pytest.raises(ValueError, match=r"rank=.* is out of range; allowed: integers 1..4"):
            layers.check_rank("rank", bad, 4)
    assert layers.rank_pair(3) == (3, 3) and layers.rank_pair([2, 5]) == (2, 5)
    with pytest.raises(ValueError, match=r"rank=\[1, 2, 3\] must be an integer or a pair"):
        layers.rank_pair([1, 2, 3])


def test_layer_checks_refuse_what_the_decompositions_do_not_handle():
    assert isinstance(layers.check_conv(nn.Conv2d(2, 3, 3)), nn.Conv2d)
    with pytest.raises(ValueError, match="groups=2; allowed: groups=1"):
        layers.check_conv(nn.Conv2d(2, 4, 3, groups=2))
    with pytest.raises(ValueError, match="padding_mode='reflect'; allowed: 'zeros'"):
        layers.check_conv(nn.Conv2d(2, 4, 3, padding_mode="reflect"))
    with pytest.raises(ValueError, match="layer is Linear; allowed: nn.Conv2d"):
        layers.check_conv(nn.Linear(2, 3))
    with pytest.raises(ValueError, match="layer is Conv2d; allowed: nn.Linear"):
        layers.check_linear(nn.Conv2d(2, 3, 1))
    assert layers.weight64(nn.Linear(2, 3)).dtype == torch.float64


def test_conv_like_copies_the_geometry_along_one_axis():
    like = nn.Conv2d(3, 3, (3, 5), stride=(2, 3), padding=(1, 2), dilation=(1, 2))
    vertical = layers.conv_like(3, 4, (3, 1), like=like, axis="h")
    assert vertical.stride == (2, 1) and vertical.padding == (1, 0) and vertical.dilation == (1, 1)
    horizontal = layers.conv_like(4, 5, (1, 5), like=like, axis="w")
    assert horizontal.stride == (1, 3) and horizontal.padding == (0, 2) and horizontal.dilation == (1, 2)
    assert isinstance(layers.conv_like(3, 4, (1, 1)), layers.PointwiseConv)


def test_finish_copies_the_bias_and_set_weight_reshapes():
    source = nn.Conv2d(2, 3, 1)
    first, last = layers.conv_like(2, 2, (1, 1)), layers.conv_like(2, 3, (1, 1), bias=True)
    layers.set_weight(first, torch.eye(2))
    layers.set_weight(last, source.weight.detach().reshape(3, 2))
    seq = layers.finish([first, last], source)
    x = torch.randn(1, 2, 4, 4)
    assert torch.allclose(seq(x), source(x), atol=1e-6)


@pytest.mark.parametrize("value", [0, -1, 9, 2.5, True, "3"])
def test_check_chunk_names_the_allowed_range(value):
    with pytest.raises(
        ValueError, match=r"chunk=.* is out of range; allowed: integers 1\.\.8 \(the number of masks\)"
    ):
        layers.check_chunk(value, 8, "masks")


def test_check_chunk_takes_numpy_integers_and_allows_one_for_an_empty_set():
    import numpy as np

    assert layers.check_chunk(np.int64(3), 8, "masks") == 3 and layers.check_chunk(1, 0, "nodes") == 1
