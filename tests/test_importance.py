import numpy as np
import pytest
import torch
from conftest import per_class_metrics, random_batches
from torch import nn

from netshrink import allocator, checks, models, stats
from netshrink.compress import hooked, importance, masking, naive, prune


@pytest.mark.parametrize(
    ("model", "layer", "shape"),
    [
        (lambda: models.MLP(in_features=20, hidden=(16,)), "hidden.0", (20,)),
        (lambda: models.MLP(in_features=20, hidden=(16, 12, 8)), "hidden.1", (20,)),
        (
            lambda: models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7),
            "conv2",
            (1, 8, 8),
        ),
        (
            lambda: models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7),
            "fc",
            (1, 8, 8),
        ),
    ],
)
@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_batched_loss_change_equals_one_pass_per_node(model, layer, shape, chunk):
    torch.manual_seed(0)
    net = model().eval()
    loader = random_batches(shape)
    chunk = min(chunk, net.get_submodule(layer).weight.shape[0])  # at most one node a row
    fast = importance.loss_change(net, layer, loader, chunk=chunk)
    hooked = importance.ablate(net, layer, loader, chunk=chunk, accuracy=False)
    slow = naive.loss_change_naive(net, layer, loader)
    assert fast.shape == slow.shape == (net.get_submodule(layer).weight.shape[0],)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(hooked.loss - hooked.intact_loss, slow, atol=1e-5)


def test_zeroing_a_node_equals_removing_its_weights():
    torch.manual_seed(1)
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    loader = random_batches((20,))
    change = importance.loss_change(net, "hidden.0", loader)

    keep = torch.ones(16, dtype=torch.bool)
    keep[3] = False
    pruned = prune.remove_nodes(net, "hidden.0", keep)
    base = importance.ablate(net, "hidden.0", loader, nodes=[0]).intact_loss
    loss = (
        sum(torch.nn.functional.cross_entropy(pruned(x), y, reduction="sum").item() for x, y in loader) / 60
    )
    assert change[3].item() == pytest.approx(loss - base, abs=1e-6)


def test_classify_by_tolerance():
    labels = importance.classify(torch.tensor([0.5, 0.01, -0.01, -0.3, 0.0]), tol=0.02)
    assert labels.tolist() == ["important", "zero", "zero", "worse", "zero"]
    with pytest.raises(ValueError, match="tol=-1"):
        importance.classify(torch.zeros(3), tol=-1)


def test_taylor_is_minus_activation_times_gradient():
    torch.manual_seed(2)
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    loader = random_batches((20,), n=1)
    x, y = loader[0]
    a = net.hidden[0](x)
    a.retain_grad()
    logits = net.out(torch.relu(a))
    torch.nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    expected = -(a * a.grad).sum(0) / len(y)
    assert torch.allclose(importance.taylor(net, "hidden.0", loader).float(), expected, atol=1e-6)


def test_taylor_ranks_like_the_oracle_for_small_effects():
    torch.manual_seed(3)
    net = models.MLP(in_features=20, hidden=(64,)).eval()
    with torch.no_grad():
        net.out.weight.mul_(0.05)  # small effects: the first-order estimate is close
    loader = random_batches((20,), n=3)
    rho = stats.spearman(
        importance.taylor(net, "hidden.0", loader), importance.loss_change(net, "hidden.0", loader)
    )
    assert rho > 0.9


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("conv9", "layer='conv9' does not exist; allowed values: conv1, conv2, conv3, conv4, fc"),
        ("pool", "layer='pool' has no nodes to remove"),
        ("out", "layer='out' is the output layer"),
    ],
)
def test_bad_layer_is_refused(layer, message):
    net = models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7)
    for fn in (importance.loss_change, importance.taylor):
        with pytest.raises(ValueError, match=message):
            fn(net, layer, random_batches((1, 8, 8), n=1))


def test_classes_follow_the_sign_and_the_tolerance():
    labels = importance.classify(torch.tensor([1.0, 0.0, -1.0, 0.1, -0.1, 0.1001, -0.1001]), 0.1)
    assert labels.tolist() == ["important", "zero", "worse", "zero", "zero", "important", "worse"]
    assert isinstance(importance.classify(torch.zeros(2), 0.0), np.ndarray)


@pytest.mark.parametrize(
    ("model", "layer", "shape"),
    [
        (lambda: models.MLP(in_features=20, hidden=(16,)), "hidden.0", (20,)),
        (lambda: models.MLP(in_features=20, hidden=(16, 12, 8)), "hidden.0", (20,)),
        (lambda: models.MLP(in_features=20, hidden=(16, 12, 8)), "hidden.2", (20,)),
        (
            lambda: models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7),
            "conv3",
            (1, 8, 8),
        ),
    ],
)
@pytest.mark.parametrize("scale", [1.0, 30.0])  # 30: the exact-maximum path of the last hidden layer
def test_per_class_loss_and_accuracy_equal_the_pruned_models(model, layer, shape, scale):

    torch.manual_seed(4)
    net = model().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale**0.5)
    loader = random_batches(shape, n=3, size=50)
    nodes = torch.tensor([4, 0, 2])
    result = importance.ablate(net, layer, loader, nodes=nodes, chunk=2)
    assert result.class_loss.shape == result.class_acc.shape == (3, 10)
    base_loss, base_acc = per_class_metrics(net, loader)
    assert torch.allclose(result.intact_class_loss, base_loss, atol=1e-5, equal_nan=True)
    assert torch.allclose(result.intact_class_acc, base_acc, equal_nan=True)
    n = net.get_submodule(layer).weight.shape[0]
    for row, j in enumerate(nodes.tolist()):
        pruned = prune.remove_nodes(net, layer, torch.arange(n) != j)
        loss, acc = per_class_metrics(pruned, loader)
        assert torch.allclose(result.class_loss[row], loss, rtol=1e-4, atol=1e-4, equal_nan=True)
        assert torch.allclose(result.class_acc[row], acc, equal_nan=True)
    lean = importance.ablate(net, layer, loader, nodes=nodes, accuracy=False)
    assert lean.correct is None
    assert torch.allclose(lean.loss_change, result.loss_change, rtol=1e-4, atol=1e-4)


def test_bad_node_indices_are_refused():
    net = models.MLP(in_features=20, hidden=(16,))
    with pytest.raises(ValueError, match=r"nodes must be indices in 0..15"):
        importance.ablate(net, "hidden.0", random_batches((20,), n=1), nodes=[16])


@pytest.mark.parametrize("tol", [float("nan"), float("inf"), -1e-9, "0.1", None])
def test_classify_refuses_a_tolerance_that_is_not_a_finite_number(tol):
    with pytest.raises(ValueError, match=r"tol=.* must be a finite number >= 0"):
        importance.classify(torch.zeros(3), tol=tol)


def test_loss_change_on_an_empty_loader_is_an_error_not_nan():
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    with pytest.raises(ValueError, match=r"loader yielded no examples"):
        importance.loss_change(net, "hidden.0", [])
    with pytest.raises(ValueError, match=r"loader yielded no examples"):
        naive.loss_change_naive(net, "hidden.0", [])


def test_layer_names_checks_and_node_counts():
    net = models.MLP(in_features=20, hidden=(16, 8))
    assert checks.prunable_layers(net) == ["hidden.0", "hidden.1"]
    assert checks.check_layer(net, "hidden.1") is net.hidden[1]
    with pytest.raises(ValueError, match=r"layer='out' .*allowed.*hidden.0, hidden.1"):
        checks.check_layer(net, "out")
    assert checks.node_count(net.hidden[0]) == 16 and checks.node_count(nn.Conv2d(3, 5, 3)) == 5
    assert checks.check_tol("tol", 0) == 0.0
    for bad in (-1, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(ValueError, match="tol=.* must be a finite number >= 0"):
            checks.check_tol("tol", bad)
    assert checks.prunable_layers(net) == ["hidden.0", "hidden.1"]
    assert masking.check_keep(torch.ones(16, dtype=torch.bool), 16).all()
    with pytest.raises(ValueError, match="keep"):
        masking.check_keep(torch.ones(15, dtype=torch.bool), 16)


@pytest.mark.parametrize("chunk", [0, -1, 17, 2.5, True])
def test_a_chunk_that_cannot_fit_is_refused_naming_the_allowed_range(chunk):
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    loader = random_batches((20,))
    with pytest.raises(
        ValueError, match=r"chunk=.* is out of range; allowed: integers 1\.\.16 \(the number of nodes"
    ):
        importance.ablate(net, "hidden.0", loader, chunk=chunk)
    with pytest.raises(
        ValueError, match=r"chunk=.* is out of range; allowed: integers 1\.\.3 \(the number of masks\)"
    ):
        masking.evaluate_masks(net, "hidden.0", loader, keep=torch.ones(3, 16, dtype=torch.bool), chunk=chunk)


def test_hooked_passes_stay_within_the_budget_and_give_the_same_sums(monkeypatch):
    monkeypatch.setattr(allocator, "keeps_freed_memory", lambda: False)  # the 1 MB budget
    torch.manual_seed(0)
    net = models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7).eval()
    x = torch.randn(1, 1, 8, 8)
    # per image: conv1 4 x 8 x 8 = 256 elements, conv2 6 x 8 x 8 = 384 (the largest from conv1 on);
    # fc 7 and out 10 (the largest from fc on)
    assert hooked.rows_per_pass(net, net.conv1, x) == hooked.PASS_BUDGET["cpu"] // 384
    assert hooked.rows_per_pass(net, net.fc, x) == hooked.PASS_BUDGET["cpu"] // 10
    monkeypatch.setattr(allocator, "keeps_freed_memory", lambda: True)  # freed blocks are reused
    assert hooked.rows_per_pass(net, net.fc, x) == hooked.PASS_BUDGET["cpu, freed memory kept"] // 10
    monkeypatch.setattr(allocator, "keeps_freed_memory", lambda: False)
    loader = random_batches((1, 8, 8))
    wide = importance.ablate(net, "conv1", loader)
    monkeypatch.setitem(hooked.PASS_BUDGET, "cpu", 384 * 3)  # 3 rows a pass: blocks of one image
    monkeypatch.setattr(masking, "PROBE_ROWS", 3)  # the next-layer check's pass too
    rows = []  # the rows conv3 sees: the stacked masked passes, and the intact pass of each batch
    real = net.conv3.forward
    monkeypatch.setattr(net.conv3, "forward", lambda x: rows.append(len(x)) or real(x))
    narrow = importance.ablate(net, "conv1", loader)
    assert sum(r for r in rows if r > 3) == 60  # every other pass holds at most 3 rows
    intact = importance.ablate(net, "conv1", loader, nodes=[])  # no ablation: the intact row alone
    assert intact.loss_sum.shape == (0, 10) and torch.allclose(intact.intact_loss_sum, wide.intact_loss_sum)
    assert torch.allclose(narrow.loss_sum, wide.loss_sum) and torch.equal(narrow.correct, wide.correct)


def test_small_batches_are_merged_and_a_large_one_split_in_order():
    batches = [(torch.full((n, 2), float(i)), torch.full((n,), i)) for i, n in enumerate([3, 3, 5, 2, 13])]
    merged = list(masking.merged_batches(batches, torch.device("cpu"), rows=6))
    assert [len(y) for _, y in merged] == [6, 5, 2, 5, 4, 4]  # 3+3; 5 (5+2 > 6); 2; 13 in 3 pieces
    assert torch.equal(torch.cat([y for _, y in merged]), torch.cat([y for _, y in batches]))
    assert all(torch.equal(x[:, 0], y.float()) for x, y in merged), "rows stay with their labels"


def test_loss_change_does_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    net = models.MLP(in_features=20, hidden=(16,)).eval()
    ((x, y),) = random_batches((20,), n=1, size=120)
    whole = importance.loss_change(net, "hidden.0", [(x, y)])
    small = importance.loss_change(net, "hidden.0", [(x[i : i + 7], y[i : i + 7]) for i in range(0, 120, 7)])
    assert torch.allclose(whole, small, atol=1e-6)
