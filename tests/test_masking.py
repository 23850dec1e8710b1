"""The one batched evaluator of keep-masks against a plain loop (one forward pass per mask, the
layer's output multiplied by the mask), on every path it takes: chains (rank-one updates for
single removals, masked next-layer weights for other masks) and hooks (any other model)."""

import pytest
import torch
from torch import nn

from netshrink import metrics, models
from netshrink.compress import chain, chain_sums, masking


def _batches(shape, n_batches=3, size=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, *shape, generator=g), torch.randint(0, 10, (size,), generator=g))
            for _ in range(n_batches)]  # fmt: skip


def _plain(model, layer, loader, keep):
    """Per-class sums, intact model first, one forward pass per mask over the loader."""
    module = model.get_submodule(layer)
    current = []
    handle = module.register_forward_hook(
        lambda _m, _i, out: out * current[0].view(1, -1, *([1] * (out.dim() - 2))) if current else out
    )
    rows = []
    try:
        with torch.no_grad():
            for mask in [None, *keep]:
                current[:] = [] if mask is None else [mask.float()]
                sums = [metrics.class_sums(model(x).unsqueeze(0), y, 10) for x, y in loader]
                rows.append((sum(s[0] for s in sums), sum(s[1] for s in sums)))
    finally:
        handle.remove()
    return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])


def _mlp2():
    torch.manual_seed(0)
    return models.MLP(in_features=12, hidden=(9, 8)).eval()


def _bn_sequential():  # not a chain: the hooked path
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 9), nn.BatchNorm1d(9), nn.ReLU(), nn.Linear(9, 10)).eval()
    net[1].running_mean.uniform_(-0.5, 0.5)
    return net


def _conv():
    torch.manual_seed(0)
    return models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7).eval()


CASES = {  # model, layer, input shape
    "chain, last hidden layer": (_mlp2, "hidden.1", (12,)),
    "chain, first of two hidden layers": (_mlp2, "hidden.0", (12,)),
    "hooks, batch norm after the layer": (_bn_sequential, "0", (12,)),
    "hooks, conv layer": (_conv, "conv2", (1, 8, 8)),
}


@pytest.mark.parametrize("masks_of", ["single", "random"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_batched_evaluator_equals_one_pass_per_mask(case, masks_of):
    make, layer, shape = case
    model = make()
    n = model.get_submodule(layer).weight.shape[0]
    if masks_of == "single":  # each mask removes one node: the rank-one path on chains
        keep = ~torch.eye(n, dtype=torch.bool)
    else:
        keep = torch.rand(5, n, generator=torch.Generator().manual_seed(1)) > 0.4
    loader = _batches(shape)
    result = masking.evaluate_masks(model, layer, loader, keep=keep, chunk=2)
    loss_sum, correct = _plain(model, layer, loader, keep)
    assert result.loss_sum.shape == (len(keep), 10) and result.intact_loss_sum.shape == (10,)
    assert torch.allclose(result.loss_sum, loss_sum[1:], rtol=1e-5, atol=1e-4)
    assert torch.allclose(result.intact_loss_sum, loss_sum[0], rtol=1e-5, atol=1e-4)
    assert torch.equal(result.correct, correct[1:]) and torch.equal(result.intact_correct, correct[0])
    assert result.count.sum() == 21
    assert result.intact_loss == pytest.approx(metrics.evaluate(model, loader)["loss"], abs=1e-5)
    assert result.loss.shape == result.acc.shape == result.loss_change.shape == (len(keep),)
    assert torch.allclose(result.loss_change, result.loss - result.intact_loss)
    if masks_of == "single":
        assert torch.equal(result.nodes, torch.arange(n))
    else:
        with pytest.raises(ValueError, match="every mask removes exactly one node"):
            _ = result.nodes


def test_no_masks_evaluates_the_intact_model_alone():
    model = _mlp2()
    loader = _batches((12,))
    result = masking.evaluate_masks(model, "hidden.0", loader, keep=torch.ones(0, 9, dtype=torch.bool))
    assert result.loss.shape == (0,) and result.nodes.shape == (0,)
    assert result.intact_acc == pytest.approx(metrics.evaluate(model, loader)["acc"])


def test_small_batches_are_merged_up_to_the_row_limit():
    batches = _batches((3,), n_batches=5, size=4)
    merged = list(masking.merged_batches(batches, torch.device("cpu"), rows=9))
    assert [len(y) for _, y in merged] == [8, 8, 4]
    assert torch.equal(torch.cat([x for x, _ in merged]), torch.cat([x for x, _ in batches]))


def test_class_sums_of_class_planes_equal_those_of_rows():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, 10, generator=g)  # (t, N, C)
    logits[:, :5] = 1.0  # ties: the target's logit equals the largest, counted as correct
    y = torch.randint(0, 10, (50,), generator=g)
    loss_sum, correct = metrics.class_sums(logits, y, 10)
    planes = logits.transpose(1, 2).contiguous()  # (t, C, N)
    plane_loss, plane_correct = metrics.class_sums(planes, y, 10, class_dim=1)
    assert torch.allclose(plane_loss, loss_sum, rtol=1e-6, atol=1e-6)
    assert torch.equal(plane_correct, correct)
    assert metrics.class_sums(planes, y, 10, accuracy=False, class_dim=1)[1] is None


def test_the_chain_sums_hold_the_intact_chain_first_then_each_mask():
    model = _mlp2()
    x, y = torch.randn(7, 12), torch.randint(0, 10, (7,))
    view = chain.linear_chain(model)
    keep = torch.ones(3, 9, dtype=torch.bool)
    keep[torch.arange(3), torch.tensor([0, 4, 8])] = False
    with torch.no_grad():
        loss_sum, correct = chain_sums.chain_sums(view, 0, x, y, keep, None, None, 10, True)
    result = masking.evaluate_masks(model, "hidden.0", [(x, y)], keep=keep)
    assert loss_sum.shape == (4, 10) and torch.allclose(loss_sum[1:], result.loss_sum, atol=1e-6)
    assert torch.allclose(loss_sum[0], result.intact_loss_sum, atol=1e-6)
