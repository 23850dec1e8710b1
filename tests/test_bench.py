"""Benchmarks (`make bench`): batched evaluation of many masks against the draft's loop.

Not part of `make test` (marker `bench`). pytest-benchmark prints both timings side by side;
the number in brackets after each median is its ratio to the fastest, i.e. the speedup.
"""

import pytest
import torch

from netshrink import data, models
from netshrink.compress import decompose, importance, naive, prune

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
        prune.evaluate_masks,
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
# chapter's 4-conv CNN ablated, against one forward pass per channel, on 1,000 images.
CONV4_LAYERS = ["conv1", "conv2", "conv3", "conv4", "fc"]


@pytest.fixture(scope="module")
def conv4_setting():
    torch.manual_seed(0)
    model = models.Conv4Net().eval()
    x, y = torch.randn(1000, 1, 28, 28), torch.randint(0, 10, (1000,))
    return model, [(x[i : i + 500], y[i : i + 500]) for i in range(0, 1000, 500)]


@pytest.mark.parametrize("layer", CONV4_LAYERS)
def test_bench_hooked_ablation_batched(benchmark, conv4_setting, layer):
    model, batches = conv4_setting
    benchmark.group = f"loss change of every node of Conv4Net's {layer}, 1,000 images"
    change = benchmark.pedantic(importance.loss_change, args=(model, layer, batches), rounds=2)
    assert change.shape == (importance.node_count(model.get_submodule(layer)),)


@pytest.mark.parametrize("layer", CONV4_LAYERS)
def test_bench_hooked_ablation_one_pass_per_node(benchmark, conv4_setting, layer):
    model, batches = conv4_setting
    benchmark.group = f"loss change of every node of Conv4Net's {layer}, 1,000 images"
    change = benchmark.pedantic(naive.loss_change_naive, args=(model, layer, batches), rounds=1)
    assert change.shape == (importance.node_count(model.get_submodule(layer)),)


# A decomposed layer's 1x1 convs: `decompose.PointwiseConv` (one batched matrix product) against
# nn.Conv2d (oneDNN) on the same NCHW input, at the shapes of the decomposed LeNet's conv2 and
# the CIFAR-10 CNN's second conv at k = 4.
POINTWISE_SHAPES = [(1000, 15, 10, 32), (100, 16, 32, 32)]  # (batch, in channels, side, out channels)


@pytest.mark.parametrize("shape", POINTWISE_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", ["PointwiseConv", "nn.Conv2d"])
def test_bench_pointwise_conv(benchmark, kind, shape):
    n, c, side, t = shape
    torch.manual_seed(0)
    layer = decompose.PointwiseConv(c, t, bias=True).eval()
    if kind == "nn.Conv2d":
        conv = torch.nn.Conv2d(c, t, 1).eval()
        conv.load_state_dict(layer.state_dict())
        layer = conv
    x = torch.randn(n, c, side, side)
    benchmark.group = f"1x1 conv {c} -> {t} channels on {n} NCHW maps of {side}x{side}"
    with torch.inference_mode():
        y = benchmark.pedantic(layer, args=(x,), rounds=20, iterations=10, warmup_rounds=2)
    assert y.shape == (n, t, side, side)


# The networks' 2x2 pooling (`models.MaxPool2x2`, `models.AvgPool2x2`) against the library's
# kernels on the same NCHW maps: the CIFAR-10 network's first pooling input.
POOLS = {
    "MaxPool2x2": lambda: models.MaxPool2x2(),
    "nn.MaxPool2d": lambda: torch.nn.MaxPool2d(2),
    "AvgPool2x2": lambda: models.AvgPool2x2(),
    "nn.AvgPool2d": lambda: torch.nn.AvgPool2d(2, 2),
}


@pytest.mark.parametrize("kind", POOLS)
def test_bench_pooling(benchmark, kind):
    x = torch.randn(100, 32, 32, 32)
    benchmark.group = f"2x2 {'max' if 'Max' in kind else 'average'} pooling of 100 NCHW maps 32x32x32"
    with torch.inference_mode():
        y = benchmark.pedantic(POOLS[kind](), args=(x,), rounds=20, iterations=10, warmup_rounds=2)
    assert y.shape == (100, 32, 16, 16)


def test_bench_training_near_the_machines_limit(capsys):
    """Achieved GFLOP/s of every training step the chapters run, beside this machine's matrix
    product in the same run (printed: pytest-benchmark has no column for it)."""
    from netshrink.experiments import throughput

    table = throughput.throughput_table(steps=5)
    with capsys.disabled():
        print(
            f"\nfloat32 matrix product: {table.attrs['limit']:.1f} GFLOP/s, {torch.get_num_threads()} threads"
        )
        print(table.round(2).to_string())
    assert (table["% of the matmul limit"] > 0).all() and len(table) == len(throughput.chapter_configs())


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
