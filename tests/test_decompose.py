"""Decomposing models by plan (`compress.decompose`): layers replaced by name, plans checked, ranks
refused with the allowed range."""

import pytest
import torch
from conftest import relative_error
from torch import nn

from netshrink import models
from netshrink.compress import decompose


def test_decompose_model_replaces_named_layers_and_leaves_the_original():
    torch.manual_seed(0)
    net = models.LeNet().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    plan = {
        "conv1": ["tucker1", 16],
        "conv2": ["tucker2", [16, 32]],
        "l1": ["tucker2", [120, 120]],
        "l2": {"method": "tucker1", "rank": 84},
    }
    new = decompose.decompose_model(net, plan)
    x = torch.rand(5, 1, 28, 28)
    assert relative_error(new(x), net(x)) <= 1e-4
    assert isinstance(net.conv2, nn.Conv2d) and isinstance(new.conv2, nn.Sequential)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert [m.out_channels for m in new.conv2] == [16, 32, 32]


def test_decompose_model_reaches_into_sequential_containers():
    net = models.CifarCNN(pool=True).eval()
    new = decompose.decompose_model(net, {"features.2": ["tucker2", 0.99]})
    assert isinstance(new.features[2], nn.Sequential)
    assert new(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    ("layer", "method", "spec", "message"),
    [
        (nn.Conv2d(4, 6, 3), "tucker2", {"rank": (5, 6)}, r"rank\[0\] \(input channels\)=5 .* 1\.\.4"),
        (nn.Conv2d(4, 6, 3), "tucker2", {"rank": (4, 7)}, r"rank\[1\] \(output channels\)=7 .* 1\.\.6"),
        (nn.Conv2d(4, 6, 3), "tucker1", {"rank": 0}, r"rank=0 is out of range; allowed: integers 1\.\.6"),
        (nn.Conv2d(4, 6, 3), "cp", {"rank": -2}, r"rank=-2 is out of range"),
        (nn.Conv2d(4, 6, 3), "jaderberg", {"rank": 13}, r"rank=13 .* 1\.\.12"),
        (nn.Conv2d(4, 6, 3), "svd", {"rank": 2}, r"method='svd' for a Conv2d; allowed: tucker2, tucker1, cp"),
        (nn.Conv2d(4, 6, 3), "btd", {"rank": 2}, r"needs n_blocks"),
        (nn.Conv2d(4, 6, 3), "cp", {"rank": "vbmf"}, r"rank rules apply to tucker1 and tucker2 only"),
        (nn.Conv2d(4, 6, 3), "tucker2", {"rank": "big"}, r"rank rule 'big' is not known; allowed"),
        (nn.Conv2d(4, 6, 3, groups=2), "tucker2", {"rank": 2}, r"groups=2; allowed: groups=1"),
        (nn.Linear(12, 20), "cp", {"rank": 2}, r"method='cp' for a Linear; allowed: tucker2, tucker1, tt"),
        (nn.Linear(12, 20), "tt", {"rank": 2, "in_modes": [3, 5], "out_modes": [4, 5]},
         r"in_modes=\[3, 5\] multiply to 15; allowed: a product of 12"),
        (nn.Linear(12, 20), "tt", {"rank": 13, "in_modes": [3, 4], "out_modes": [4, 5]},
         r"rank\[0\]=13 .* 1\.\.12"),
        (nn.BatchNorm2d(3), "tucker2", {"rank": 2}, r"module is BatchNorm2d; allowed: nn.Conv2d and"),
    ],
)  # fmt: skip
def test_bad_ranks_and_layers_get_a_clear_error(layer, method, spec, message):
    with pytest.raises(ValueError, match=message):
        decompose.decompose_layer(layer, method, **spec)


def test_unknown_layer_names_in_a_plan_are_refused():
    net = models.LeNet()
    with pytest.raises(ValueError, match=r"layer 'conv9' is not in the model; allowed: conv1, conv2, l1"):
        decompose.decompose_model(net, {"conv9": ["tucker2", 4]})
    with pytest.raises(ValueError, match=r"layer 'pool': module is AvgPool2x2"):
        decompose.decompose_model(net, {"pool": ["tucker2", 4]})
    with pytest.raises(ValueError, match=r"layer 'conv2': rank\[0\] \(input channels\)=17"):
        decompose.decompose_model(net, {"conv2": ["tucker2", [17, 4]]})


def test_parameter_counts_of_the_draft_listing():
    """Draft 002's decomposed Net, built with our layers, has its 59,560 parameters... except
    that its l1 core maps 40 -> 200 features, a rank above l1's 120 outputs that we refuse."""
    net = models.LeNet()
    assert models.count_parameters(net) == 120_382
    with pytest.raises(ValueError, match=r"rank\[1\] \(output features\)=200"):
        decompose.decompose_model(net, {"l1": ["tucker2", [40, 200]]})
    new = decompose.decompose_model(
        net, {"conv1": ["tucker1", 2], "conv2": ["tucker2", [8, 4]], "l2": ["tucker1", 30]}
    )
    expected = 120_382 - (416 + 12_832 + 10_164) + (50 + 48) + (128 + 800 + 160) + (3600 + 2604)
    assert models.count_parameters(new) == expected


def test_plans_layers_and_rank_rules_by_name():
    net = models.LeNet()
    assert models.layer_names(net) == ["conv1", "conv2", "l1", "l2", "l_out"]
    assert decompose.normalise_plan({"l1": ["tucker1", 4], "conv2": {"method": "cp", "rank": 3}}) == {
        "l1": {"method": "tucker1", "rank": 4}, "conv2": {"method": "cp", "rank": 3}}  # fmt: skip
    with pytest.raises(ValueError, match=r"plan\['l1'\]=.* must be \[method, rank\]"):
        decompose.normalise_plan({"l1": "tucker1"})
    w = torch.randn(6, 4, 3, 3)
    assert decompose.unfold(w, 1).shape == (4, 54)
    from netshrink.compress import ranks

    assert ranks.resolve_rank(net.conv2, "tucker2", 0.999999) == [16, 32]  # nearly all energy: full rank
    assert ranks.resolve_rank(net.conv2, "cp", 5) == 5
