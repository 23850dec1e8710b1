"""The plain loops (`compress.naive`), the ground truth of the batched paths: they must equal
physically removing nodes, and leave the model as they found it."""

import torch
from conftest import random_batches

from netshrink import models, train
from netshrink.compress import naive, prune


def _net():
    torch.manual_seed(0)
    return models.MLP(in_features=20, hidden=(12, 9)).eval()


def test_the_per_mask_loop_equals_removing_the_nodes_and_restores_the_weights():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loader = random_batches((20,))
    keep = torch.rand(4, 12, generator=torch.Generator().manual_seed(2)) > 0.5
    result = naive.evaluate_masks_naive(net, "hidden.0", loader, keep=keep)
    assert result.loss.shape == (4,)
    assert abs(result.intact_loss - train.evaluate(net, loader)["loss"]) < 1e-6
    for mask, loss, acc in zip(keep, result.loss, result.acc, strict=True):
        smaller = train.evaluate(prune.remove_nodes(net, "hidden.0", mask), loader)
        assert abs(float(loss) - smaller["loss"]) < 1e-5 and abs(float(acc) - smaller["acc"]) < 1e-9
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_the_per_node_loop_equals_removing_each_node():
    net = _net()
    loader = random_batches((20,))
    change = naive.loss_change_naive(net, "hidden.1", loader)
    base = train.evaluate(net, loader)["loss"]
    for j in (0, 4, 8):
        keep = torch.ones(9, dtype=torch.bool)
        keep[j] = False
        without = train.evaluate(prune.remove_nodes(net, "hidden.1", keep), loader)["loss"]
        assert abs(float(change[j]) - (without - base)) < 1e-5
    assert not net.hidden[1]._forward_hooks, "the hook is removed"
