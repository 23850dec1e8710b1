"""Batch norm folded into the conv before it: the same outputs, no batch norm left after a conv,
for plain, pruned and decomposed VGG-16s."""

import pytest
import torch
from torch import nn

from netshrink import models
from netshrink.compress import decompose
from netshrink.compress.fold import fold_batch_norm
from netshrink.experiments import vgg_case_study as vc


def trained_looking_vgg() -> nn.Module:
    """A narrow VGG-16 whose batch norms hold non-trivial statistics and affine parameters."""
    torch.manual_seed(0)
    vgg = models.vgg16(width=0.0625)
    for norm in vgg.modules():
        if isinstance(norm, nn.BatchNorm2d):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
            norm.weight.data.uniform_(0.5, 1.5)
            norm.bias.data.uniform_(-0.5, 0.5)
    return vgg.eval()


def norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("method", ["none", "pruned", *decompose.CONV_METHODS])
def test_folding_keeps_the_outputs_and_removes_every_batch_norm(method):
    vgg = trained_looking_vgg()
    if method == "pruned":
        vgg = vc.prune_filters(vgg, {"features.3": 0.5, "features.10": 0.25})
    elif method != "none":
        spec = {"method": method, "rank": 2} | ({"rank": 1, "n_blocks": 2} if method == "btd" else {})
        vgg = decompose.decompose_model(vgg, {"features.7": spec, "features.20": spec})
    x = torch.rand(4, 3, 32, 32)
    folded = fold_batch_norm(vgg)
    assert norms(vgg) == 13 and norms(folded) == 0
    with torch.no_grad():
        torch.testing.assert_close(folded(x), vgg(x), rtol=1e-4, atol=1e-5)
    per_channel = sum(m.num_features for m in vgg.modules() if isinstance(m, nn.BatchNorm2d))
    # each norm's 2 parameters per channel go; at most one bias per channel comes
    assert models.count_parameters(folded) <= models.count_parameters(vgg) - per_channel


def test_folding_leaves_the_model_as_it_was():
    vgg = trained_looking_vgg().train()
    before = {k: v.clone() for k, v in vgg.state_dict().items()}
    folded = fold_batch_norm(vgg)
    assert vgg.training and not folded.training and norms(vgg) == 13
    assert all(torch.equal(before[k], v) for k, v in vgg.state_dict().items())


def test_a_batch_norm_after_anything_but_a_conv_stays():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 5))
    net[2].running_mean.uniform_(-1, 1)
    folded = fold_batch_norm(net)
    assert isinstance(folded[2], nn.BatchNorm2d)
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net.eval()(x))
