import copy

import pytest
import torch
from torch import nn

from netshrink import models
from netshrink.compress import masking, naive, prune


@pytest.fixture()
def mlp():
    torch.manual_seed(0)
    return models.MLP(in_features=20, hidden=(16, 12), n_classes=5).eval()


def batches(n=3, size=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 20, generator=g), torch.randint(0, 5, (size,), generator=g)) for _ in range(n)]


def test_random_masks_remove_exactly_n_among_candidates():
    g = torch.Generator().manual_seed(0)
    masks = prune.random_node_masks(10, 3, 500, candidates=[1, 2, 5, 7], generator=g)
    assert masks.shape == (500, 10) and masks.dtype == torch.bool
    assert ((~masks).sum(1) == 3).all()
    assert masks[:, [0, 3, 4, 6, 8, 9]].all(), "only candidates are removed"
    # without replacement and uniform: each candidate removed in about 3/4 of the trials
    freq = (~masks[:, [1, 2, 5, 7]]).float().mean(0)
    assert torch.allclose(freq, torch.full((4,), 0.75), atol=0.06)


def test_random_masks_are_repeatable_with_a_generator():
    a = prune.random_node_masks(128, 16, 10, generator=torch.Generator().manual_seed(1))
    b = prune.random_node_masks(128, 16, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_nodes": 8, "n_remove": 9, "n_trials": 1}, r"n_remove=9 is out of range; allowed: 0..8"),
        ({"n_nodes": 8, "n_remove": -1, "n_trials": 1}, r"n_remove=-1 is out of range"),
        (
            {"n_nodes": 8, "n_remove": 3, "n_trials": 1, "candidates": [0, 1]},
            r"allowed: 0..2 \(the candidates\)",
        ),
        ({"n_nodes": 8, "n_remove": 1, "n_trials": -2}, r"n_trials=-2"),
        ({"n_nodes": 8, "n_remove": 1, "n_trials": 1, "candidates": [9]}, r"candidates must be"),
    ],
)
def test_bad_mask_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prune.random_node_masks(**kwargs)


@pytest.mark.parametrize("layer", ["hidden.0", "hidden.1"])
def test_removed_model_equals_masked_model_and_is_smaller(mlp, layer):
    n = mlp.get_submodule(layer).out_features
    keep = prune.random_node_masks(n, 5, 1, generator=torch.Generator().manual_seed(2))[0]
    small = prune.remove_nodes(mlp, layer, keep)
    masked = prune.mask_nodes(mlp, layer, keep)
    x = torch.randn(64, 20)
    assert torch.allclose(small(x), masked(x), atol=1e-6)
    assert small.get_submodule(layer).out_features == n - 5
    assert models.count_parameters(small) < models.count_parameters(mlp)
    assert masked.get_submodule(layer).weight[~keep].abs().sum() == 0
    # the original is untouched
    assert (
        mlp.get_submodule(layer).out_features == n and mlp.get_submodule(layer).weight[~keep].abs().sum() > 0
    )


@pytest.mark.parametrize("layer", ["hidden.0", "hidden.1"])
def test_batched_evaluation_equals_the_per_mask_loop(mlp, layer):
    n = mlp.get_submodule(layer).out_features
    g = torch.Generator().manual_seed(3)
    masks = torch.cat([prune.random_node_masks(n, k, 4, generator=g) for k in (0, 1, 5, n - 1)])
    loader = batches()
    fast = masking.evaluate_masks(mlp, layer, loader, keep=masks, chunk=5)
    slow = naive.evaluate_masks_naive(mlp, layer, loader, keep=masks)
    assert fast.loss.shape == fast.acc.shape == (16,)
    assert torch.allclose(fast.loss, slow.loss, atol=1e-5) and torch.allclose(fast.acc, slow.acc, atol=1e-5)
    assert fast.intact_loss == pytest.approx(slow.intact_loss, abs=1e-5)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            "out",
            r"layer='out' is the output layer .*whose nodes are the classes.*"
            r"allowed values: hidden.0, hidden.1",
        ),
        ("hidden.7", r"layer='hidden.7' does not exist; allowed values: hidden.0, hidden.1"),
        ("hidden", r"layer='hidden' has no nodes to remove"),
    ],
)
def test_bad_layer_is_refused(mlp, layer, message):
    keep = torch.ones(16, dtype=torch.bool)
    for fn in (prune.remove_nodes, prune.mask_nodes):
        with pytest.raises(ValueError, match=message):
            fn(mlp, layer, keep)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("out", r"layer='out' is the output layer .*whose nodes are the classes.*allowed values: hidden.0"),
        ("hidden.7", r"layer='hidden.7' does not exist; allowed values: hidden.0, hidden.1"),
    ],
)
def test_bad_layer_is_refused_by_mask_evaluation(mlp, layer, message):
    with pytest.raises(ValueError, match=message):
        masking.evaluate_masks(mlp, layer, batches(1), keep=torch.ones(1, 16, dtype=torch.bool))


def _zero_channels(model, layer, keep):
    """The masked model by a hook: the layer's output channels outside `keep` are zeroed."""

    def hook(_m, _i, out):
        return out * keep.view(1, -1, *([1] * (out.dim() - 2))).to(out.dtype)

    return model.get_submodule(layer).register_forward_hook(hook)


@pytest.mark.parametrize("layer", ["conv1", "conv2", "conv3", "conv4", "fc"])
def test_removed_conv_channels_equal_zeroed_channels(layer):
    torch.manual_seed(0)
    net = models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7).eval()
    n = net.get_submodule(layer).weight.shape[0]
    keep = torch.ones(n, dtype=torch.bool)
    keep[[0, n - 1]] = False
    small = prune.remove_nodes(net, layer, keep)
    x = torch.randn(16, 1, 8, 8)
    handle = _zero_channels(net, layer, keep)
    expected = net(x)
    handle.remove()
    assert torch.allclose(small(x), expected, atol=1e-6)
    assert torch.allclose(prune.mask_nodes(net, layer, keep)(x), expected, atol=1e-6)
    assert small.get_submodule(layer).weight.shape[0] == n - 2
    assert models.count_parameters(small) < models.count_parameters(net)


def test_lenet_loses_a_channel_and_batchnorm_networks_are_refused():
    net = models.LeNet().eval()
    first = models.layer_names(net)[0]
    n = net.get_submodule(first).weight.shape[0]
    keep = torch.arange(n) != 2
    assert prune.remove_nodes(net, first, keep).get_submodule(first).weight.shape[0] == n - 1
    with pytest.raises(ValueError, match="BatchNorm2d 'features.1'.*normalisation layer"):
        prune.remove_nodes(models.vgg16(width=0.125), "features.0", torch.ones(8, dtype=torch.bool))


def test_removing_every_node_is_refused(mlp):
    with pytest.raises(ValueError, match="at least one must stay"):
        prune.remove_nodes(mlp, "hidden.0", torch.zeros(16, dtype=torch.bool))


def test_mask_of_wrong_length_is_refused(mlp):
    with pytest.raises(ValueError, match=r"for a layer of 16 nodes; got \(15,\)"):
        prune.remove_nodes(mlp, "hidden.0", torch.ones(15, dtype=torch.bool))


def test_shrink_keeps_only_removals_that_do_not_raise_the_loss(mlp):
    loader = batches()
    g = torch.Generator().manual_seed(4)
    result = prune.shrink_randomly(mlp, "hidden.0", 2, loader, n_runs=6, generator=g)
    assert result.loss.shape == result.removed.shape == (9, 6)  # step 0 and 16 candidates / 2
    assert (result.loss.diff(dim=0) <= 1e-12).all(), "the kept loss never rises"
    assert (result.removed.diff(dim=0) >= 0).all() and result.accepted[0].all()
    # a step whose removal was refused removes nothing
    assert (result.removed.diff(dim=0)[~result.accepted[1:]] == 0).all()
    # the final keep-masks reproduce the recorded losses
    again = masking.evaluate_masks(mlp, "hidden.0", loader, keep=result.keep)
    assert torch.allclose(again.loss, result.loss[-1])
    assert torch.equal((~result.keep).sum(1), result.removed[-1])


def _shrink_one_run_by_hand(model, layer, n_remove, loader, seed, rule):
    """Draft 004's Algorithm 2 as a plain loop on one run: zero the drawn nodes' weights, evaluate
    the whole model, keep or restore; the draws as `shrink_randomly` makes them."""
    from netshrink import metrics

    g = torch.Generator().manual_seed(seed)
    n_nodes = model.get_submodule(layer).out_features
    keep = torch.ones(n_nodes, dtype=torch.bool)
    untested = torch.ones(n_nodes, dtype=torch.bool)
    best = metrics.evaluate(model, loader)
    while int(untested.sum()) >= n_remove:
        keys = torch.rand(1, n_nodes, generator=g)[0] + (~untested).float() * 2
        drawn = keys.argsort()[:n_remove]
        trial = keep.clone()
        trial[drawn] = False
        untested[drawn] = False
        now = metrics.evaluate(prune.mask_nodes(model, layer, trial), loader)
        better = now["loss"] <= best["loss"] + 1e-7 and (rule == "loss" or now["acc"] >= best["acc"])
        if better:
            keep, best = trial, now
    return keep


@pytest.mark.parametrize("rule", prune.SHRINK_RULES)
@pytest.mark.parametrize("n_remove", [1, 3])
def test_shrink_follows_the_plain_loop_of_the_draft(mlp, rule, n_remove):
    loader = batches(n=4, seed=3)
    for layer in ("hidden.0", "hidden.1"):
        result = prune.shrink_randomly(
            mlp, layer, n_remove, loader, generator=torch.Generator().manual_seed(9), rule=rule
        )
        by_hand = _shrink_one_run_by_hand(mlp, layer, n_remove, loader, 9, rule)
        assert torch.equal(result.keep[0], by_hand), (layer, rule)


def test_the_draft_rule_also_keeps_the_accuracy_from_falling(mlp):
    loader = batches(n=4, seed=3)
    both = prune.shrink_randomly(
        mlp,
        "hidden.0",
        1,
        loader,
        n_runs=8,
        generator=torch.Generator().manual_seed(1),
        rule="loss and accuracy",
    )
    assert (both.acc.diff(dim=0) >= 0).all() and (both.loss.diff(dim=0) <= 1e-12).all()
    loss_only = prune.shrink_randomly(
        mlp, "hidden.0", 1, loader, n_runs=8, generator=torch.Generator().manual_seed(1)
    )
    # the same first draws: a removal the draft's rule keeps, the loss rule keeps too
    assert (both.accepted[1] <= loss_only.accepted[1]).all()
    assert (loss_only.acc.diff(dim=0) < 0).any(), "without the accuracy test the accuracy may fall"


def test_shrink_refuses_an_unknown_rule(mlp):
    with pytest.raises(
        ValueError, match=r"rule='accuracy' is not known; allowed values: 'loss', 'loss and accuracy'"
    ):
        prune.shrink_randomly(mlp, "hidden.0", 1, batches(1), rule="accuracy")


@pytest.mark.parametrize(
    ("n_remove", "message"), [(0, "n_remove=0"), (17, "n_remove=17"), (-3, "n_remove=-3")]
)
def test_shrink_refuses_bad_counts(mlp, n_remove, message):
    with pytest.raises(ValueError, match=message):
        prune.shrink_randomly(mlp, "hidden.0", n_remove, batches(1))


def _vgg_with_batch_norm_statistics():
    torch.manual_seed(0)
    net = models.vgg16(width=0.0625).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize(
    ("layer", "relu", "following"), [("features.3", 5, "features.7"), ("features.40", 42, None)]
)
def test_removing_vgg_filters_equals_zeroing_their_activations(layer, relu, following):
    net = _vgg_with_batch_norm_statistics()
    conv = net.get_submodule(layer)
    keep = torch.rand(conv.out_channels, generator=torch.Generator().manual_seed(1)) > 0.4
    pruned = prune.remove_filters(net, layer, keep)
    masked = copy.deepcopy(net)
    masked.features[relu].register_forward_hook(lambda m, i, out: out * keep.view(1, -1, 1, 1))
    x = torch.rand(4, 3, 32, 32)
    assert torch.allclose(pruned(x), masked(x), atol=1e-5)
    n = int(keep.sum())
    assert pruned.get_submodule(layer).out_channels == n
    assert pruned.features[int(layer.split(".")[1]) + 1].num_features == n
    nxt = pruned.get_submodule(following) if following else pruned.classifier[0]
    assert (nxt.in_channels if following else nxt.in_features) == n
    assert models.count_parameters(pruned) < models.count_parameters(net)


@pytest.mark.parametrize(
    ("n", "fraction", "multiple_of", "kept"),
    [(16, 0.4, 8, 8), (16, 0.1, 8, 8), (16, 0.0, 8, 16), (64, 0.2, 8, 48), (64, 0.2, 1, 51), (16, 0.9, 8, 8),
     (4, 0.5, 8, 4), (26, 0.0, 4, 26)],
)  # fmt: skip
def test_kept_filters_round_down_to_a_multiple(n, fraction, multiple_of, kept):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, n, 3)
    keep = prune.smallest_l1_filters(conv, fraction, multiple_of)
    assert int(keep.sum()) == kept
    norms = conv.weight.abs().sum(dim=(1, 2, 3))
    assert keep.all() or norms[~keep].max() <= norms[keep].min(), "the filters of largest L1 norm stay"


@pytest.mark.parametrize("multiple_of", [0, -8, 2.5])
def test_a_multiple_that_cannot_be_one_is_refused(multiple_of):
    with pytest.raises(ValueError, match=r"multiple_of="):
        prune.smallest_l1_filters(nn.Conv2d(3, 16, 3), 0.5, multiple_of)


def test_smallest_l1_filters_and_bad_requests():
    net = _vgg_with_batch_norm_statistics()
    conv = net.features[0]
    keep = prune.smallest_l1_filters(conv, 0.5)
    norms = conv.weight.abs().sum(dim=(1, 2, 3))
    assert int((~keep).sum()) == conv.out_channels // 2 and norms[~keep].max() <= norms[keep].min()
    assert prune.smallest_l1_filters(conv, 0.99).sum() == 1, "one filter always stays"
    with pytest.raises(ValueError, match=r"fraction=1.0 is out of range; allowed: \[0, 1\)"):
        prune.smallest_l1_filters(conv, 1.0)
    with pytest.raises(ValueError, match=r"fraction=-0.1 is out of range"):
        prune.smallest_l1_filters(conv, -0.1)
    with pytest.raises(
        ValueError, match=r"layer=.features.1. is not a conv layer of the model; allowed values: features.0"
    ):
        prune.remove_filters(net, "features.1", keep)
    with pytest.raises(ValueError, match=r"layer='features.99' is not a conv layer"):
        prune.remove_filters(net, "features.99", keep)


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True])
def test_mask_evaluation_refuses_a_chunk_that_is_not_a_positive_integer(chunk):
    net = models.MLP(in_features=8, hidden=(6,)).eval()
    masks = torch.ones(2, 6, dtype=torch.bool)
    loader = [(torch.randn(4, 8), torch.randint(0, 10, (4,)))]
    with pytest.raises(ValueError, match=r"chunk=.* is out of range; allowed: integers 1\.\."):
        masking.evaluate_masks(net, "hidden.0", loader, keep=masks, chunk=chunk)


def test_mask_evaluation_on_an_empty_loader_is_an_error():
    net = models.MLP(in_features=8, hidden=(6,)).eval()
    with pytest.raises(ValueError, match=r"loader yielded no examples"):
        masking.evaluate_masks(net, "hidden.0", [], keep=torch.ones(2, 6, dtype=torch.bool))


@pytest.mark.parametrize(
    ("keep", "got"),
    [
        (torch.arange(6), "dtype torch.int64"),  # indices: would keep every node but node 0
        (torch.full((6,), 0.3), "dtype torch.float32"),  # 0.3 would read as True
        ([1, 0, 1, 1, -1, 1], "dtype torch.int64"),  # -1 would read as True
        ("111111", "str"),
    ],
)
def test_a_keep_mask_must_be_booleans(keep, got):
    net = models.MLP(in_features=8, hidden=(6,)).eval()
    with pytest.raises(ValueError, match=f"keep must be booleans, True for each node to keep.*got {got}"):
        prune.remove_nodes(net, "hidden.0", keep)
    with pytest.raises(ValueError, match="keep must be booleans"):
        masking.evaluate_masks(net, "hidden.0", [(torch.randn(4, 8), torch.randint(0, 10, (4,)))], keep=keep)


def test_a_keep_mask_of_bools_in_any_container_is_taken():
    import numpy as np

    net = models.MLP(in_features=8, hidden=(6,)).eval()
    as_list = [True, False, True, True, False, True]
    for keep in (as_list, np.array(as_list), torch.tensor(as_list)):
        assert prune.remove_nodes(net, "hidden.0", keep).hidden[0].out_features == 4
    with pytest.raises(
        ValueError, match=r"keep must have shape \(6,\) for a layer of 6 nodes; got \(1, 1, 6\)"
    ):
        prune.remove_nodes(net, "hidden.0", torch.ones(1, 1, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"keep must have shape \(6,\) or \(masks, 6\).*got \(1, 1, 6\)"):
        masking.check_keep(torch.ones(1, 1, 6, dtype=torch.bool), 6)


def test_magnitude_pruning_zeroes_the_smallest_weights_of_one_layer():
    torch.manual_seed(0)
    net = models.LeNet()
    new = prune.magnitude_prune(net, "conv2", 0.5)
    w, w0 = new.conv2.weight, net.conv2.weight
    assert (w == 0).sum() == w.numel() // 2
    assert w.abs().max() == w0.abs().max() and (w[w != 0].abs().min() >= w0.abs().median())
    assert torch.equal(new.l1.weight, net.l1.weight)
    with pytest.raises(ValueError, match=r"fraction=1.0 is out of range; allowed: \[0, 1\)"):
        prune.magnitude_prune(net, "conv2", 1.0)
    with pytest.raises(
        ValueError, match=r"layer='pool' is not a Conv2d or Linear of the model; allowed: conv1"
    ):
        prune.magnitude_prune(net, "pool", 0.5)
