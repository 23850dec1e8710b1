"""Benchmarks (`make bench`): batched evaluation of many masks against the draft's loop.

Not part of `make test` (marker `bench`). pytest-benchmark prints both timings side by side;
the number in brackets after each median is its ratio to the fastest, i.e. the speedup.
"""

import pytest
import torch

from netshrink import allocator, checks, data, models
from netshrink.compress import decompose, importance, masking, naive, prune

pytestmark = pytest.mark.bench

N_MASKS, N_REMOVE = 1000, 16


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = models.MLP(hidden=(128,)).eval()  # timings do not depend on the weights' values
    test = data.load_dataset("mnist", val_size=0).test  # the 10,000 MNIST test images
    masks = prune.random_node_masks(128, N_REMOVE, N_MASKS, generator=torch.Generator().manual_seed(0))
    return model, masks, data.make_loader(test, 10_000)  # the same batches for both methods


def test_bench_masks_batched(benchmark, setting):
    model, masks, loader = setting
    benchmark.group = f"{N_MASKS} random masks, n={N_REMOVE}, 10,000 MNIST test images"
    table = benchmark.pedantic(
        masking.evaluate_masks,
        args=(model, "hidden.0", loader),
        kwargs={"keep": masks},
        rounds=5,
        warmup_rounds=1,
    )
    assert len(table.loss) == N_MASKS


def test_bench_masks_per_mask_loop(benchmark, setting):
    model, masks, loader = setting
    benchmark.group = f"{N_MASKS} random masks, n={N_REMOVE}, 10,000 MNIST test images"
    table = benchmark.pedantic(
        naive.evaluate_masks_naive, args=(model, "hidden.0", loader), kwargs={"keep": masks}, rounds=1
    )
    assert len(table.loss) == N_MASKS


ORACLE_CASES = [
    ("netshrink MLP", 10_000),
    ("nn.Sequential", 100),
    ("nn.Sequential", 1000),
    ("nn.Sequential", 10_000),
]


@pytest.fixture(scope="module", params=ORACLE_CASES, ids=lambda c: f"{c[0]}, batches of {c[1]}")
def oracle_setting(request, setting):
    """784-128-10 as the package's MLP and as a user's own nn.Sequential (the same weights), over
    the 10,000 test images in batches made once (no per-sample collation is timed)."""
    model, _, loader = setting
    kind, batch = request.param
    x, y = next(iter(loader))
    batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(y), batch)]
    if kind == "netshrink MLP":
        return f"{kind}, batches of {batch:,}", model, "hidden.0", batches
    seq = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    )
    seq[1].load_state_dict(model.hidden[0].state_dict())
    seq[3].load_state_dict(model.out.state_dict())
    return f"{kind}, batches of {batch:,}", seq.eval(), "1", batches


def test_bench_loss_change_batched(benchmark, oracle_setting):
    kind, model, layer, batches = oracle_setting
    benchmark.group = f"loss change of all 128 nodes of a {kind}, 10,000 MNIST test images"
    change = benchmark.pedantic(
        importance.loss_change, args=(model, layer, batches), rounds=20, warmup_rounds=2
    )
    assert change.shape == (128,)


def test_bench_loss_change_one_pass_per_node(benchmark, oracle_setting):
    kind, model, layer, batches = oracle_setting
    benchmark.group = f"loss change of all 128 nodes of a {kind}, 10,000 MNIST test images"
    change = benchmark.pedantic(naive.loss_change_naive, args=(model, layer, batches), rounds=3)
    assert change.shape == (128,)


# The hooked path (any layer of any model): every channel of each layer of the Node importance
# chapter's 4-conv CNN ablated, against one forward pass per channel, on 1,000 images. As in the
# chapters, the process keeps freed memory (larger passes, no page faults).
CONV4_LAYERS = ["conv1", "conv2", "conv3", "conv4", "fc"]


@pytest.fixture(scope="module")
def conv4_setting():
    allocator.keep_freed_memory()
    torch.manual_seed(0)
    model = models.Conv4Net().eval()
    x, y = torch.randn(1000, 1, 28, 28), torch.randint(0, 10, (1000,))
    return model, [(x[i : i + 500], y[i : i + 500]) for i in range(0, 1000, 500)]


HOOKED_METHODS = {"batched": (importance.loss_change, 2), "one pass per node": (naive.loss_change_naive, 1)}


@pytest.mark.parametrize("layer", CONV4_LAYERS)
@pytest.mark.parametrize("method", HOOKED_METHODS)
def test_bench_hooked_ablation(benchmark, conv4_setting, layer, method):
    model, batches = conv4_setting
    benchmark.group = f"loss change of every node of Conv4Net's {layer}, 1,000 images"
    function, rounds = HOOKED_METHODS[method]
    change = benchmark.pedantic(function, args=(model, layer, batches), rounds=rounds)
    assert change.shape == (checks.node_count(model.get_submodule(layer)),)


# CP of a conv kernel: TensorLy's ALS as `decompose.cp_conv` runs it, against tensorly-torch's
# defaults at the same rank (the shapes of the CIFAR-10 CNN's convs, a rank within 25 % of the
# parameters); the fit of each is asserted: ours must be at least as good.
CP_CASES = [(64, 64, 100), (64, 32, 60), (32, 32, 40)]  # (out, in, rank)


def _cp_error(kernel, approx):
    return float(torch.linalg.norm(approx.double() - kernel.double()) / torch.linalg.norm(kernel.double()))


@pytest.mark.parametrize("case", CP_CASES, ids=lambda c: f"{c[0]}x{c[1]}x3x3, rank {c[2]}")
@pytest.mark.parametrize("kind", ["netshrink cp_conv", "tltorch defaults"])
def test_bench_cp_of_a_conv_kernel(benchmark, kind, case):
    import tensorly as tl
    import tltorch

    out_ch, in_ch, rank = case
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(in_ch, out_ch, 3)
    kernel = conv.weight.detach()
    benchmark.group = f"CP of a {out_ch}x{in_ch}x3x3 kernel at rank {rank}"
    if kind == "netshrink cp_conv":
        layers = benchmark.pedantic(
            decompose.decompose_layer, args=(conv, "cp"), kwargs={"rank": rank}, rounds=3
        )
        first, _, _, last = layers
        approx = torch.einsum("rs,ry,rx,tr->tsyx", first.weight[:, :, 0, 0], layers[1].weight[:, 0, :, 0],
                              layers[2].weight[:, 0, 0, :], last.weight[:, :, 0, 0])  # fmt: skip
    else:
        tl.set_backend("pytorch")
        factorized = benchmark.pedantic(
            tltorch.FactorizedTensor.from_tensor,
            args=(kernel,),
            kwargs={"rank": rank, "factorization": "cp"},
            rounds=3,
        )
        approx = factorized.to_tensor().detach()
    error = benchmark.extra_info["relative error"] = _cp_error(kernel, approx.detach())
    assert 0 < error < 1
    if kind == "netshrink cp_conv":  # at least as good a fit as tensorly-torch's (its init is random)
        torch.manual_seed(0)
        reference = tltorch.FactorizedTensor.from_tensor(kernel, rank=rank, factorization="cp").to_tensor()
        assert error <= _cp_error(kernel, reference.detach()) + 1e-3
