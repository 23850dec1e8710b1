"""The device policy: one resolver, one batch mover, one mode switch, and every function that
takes a model and data run on each device this machine has (`device` fixture: the CPU always,
CUDA when present; `pytest -m cuda` runs the CUDA half)."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from netshrink import cache, data, devices, measure, models
from netshrink.book import chapters
from netshrink.compress import decompose, importance, masking, naive, prune
from netshrink.experiments import vgg_case_study as vcs
from netshrink.train import TrainConfig

SMALL = {"val_size": 500, "train_size": 2000, "test_size": 500}


def batches(shape, n=2, size=30, classes=10, seed=0):
    """CPU batches: every function must move them to the model's device itself."""
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, *shape, generator=g), torch.randint(0, classes, (size,), generator=g))
        for _ in range(n)
    ]


def on(model: nn.Module, device) -> nn.Module:
    torch.manual_seed(0)
    return model.to(device).eval()


# --- the resolver, the batch mover and the mode switch ----------------------------------------


@pytest.mark.parametrize("asked", ["tpu", "gpu", "CUDA0", "", "cuda:x"])
def test_an_unknown_device_is_refused_naming_the_allowed_values(asked):
    with pytest.raises(
        ValueError, match=r"device=.*(allowed values: auto, cpu, cuda|no such CUDA|not available)"
    ):
        devices.resolve_device(asked)


def test_a_device_that_is_not_a_string_is_refused():
    with pytest.raises(ValueError, match=r"device=3 must be a string; allowed values: auto, cpu, cuda"):
        devices.resolve_device(3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_names_what_was_asked_and_what_is_available():
    with pytest.raises(ValueError, match=r"device='cuda' was asked for.*available: cpu \(no CUDA"):
        devices.resolve_device("cuda")


def test_auto_takes_cuda_when_present_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert devices.resolve_device("auto").type == expected
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_precision_auto_is_float32_on_the_cpu_and_bfloat16_on_cuda():
    assert devices.resolve_precision("auto", "cpu") == "float32"
    assert devices.resolve_precision("auto", torch.device("cuda")) == "bfloat16"
    assert devices.resolve_precision("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(
        ValueError,
        match=r"precision='fp16' is not known; allowed values: auto, float32, bfloat16, bfloat16-if-native",
    ):
        devices.resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("native", [True, False])
def test_precision_bfloat16_if_native_follows_the_cpu(monkeypatch, native):
    monkeypatch.setattr(devices, "cpu_has_native_bfloat16", lambda: native)
    assert devices.resolve_precision("bfloat16-if-native", "cpu") == ("bfloat16" if native else "float32")
    assert devices.resolve_precision("bfloat16-if-native", torch.device("cuda")) == "bfloat16"
    assert devices.resolve_precision("auto", "cpu") == "float32"  # auto never depends on the CPU


def test_native_bfloat16_probe_matches_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    if "flags" not in flags:
        pytest.skip("no /proc/cpuinfo flags on this machine")
    expected = any(f" {flag}" in flags for flag in ("avx512_bf16", "amx_tile"))
    assert devices.cpu_has_native_bfloat16() == expected


def test_mode_restores_every_submodules_mode_also_after_an_error():
    net = models.MLP(in_features=4, hidden=(3, 3), dropout=0.5)
    net.train()
    net.hidden[0].eval()  # a mixed state must come back as it was
    before = [m.training for m in net.modules()]
    with devices.mode(net, training=False):
        assert not any(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == before
    with pytest.raises(RuntimeError), devices.mode(net, training=True):
        assert all(m.training for m in net.modules())
        raise RuntimeError
    assert [m.training for m in net.modules()] == before


def test_to_device_moves_nested_batches_and_leaves_other_values(device):
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "name": "a"}
    moved = devices.to_device(batch, device)
    assert moved["x"].device.type == device.type
    assert moved["pair"][0].device.type == moved["pair"][1][0].device.type == device.type
    assert isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    assert moved["name"] == "a"


def test_model_device_follows_the_parameters(device):
    assert devices.model_device(models.MLP(in_features=4, hidden=(3,)).to(device)).type == device.type
    assert devices.model_device(nn.ReLU()) == torch.device("cpu")


# --- functions that take a model and data, on every device ------------------------------------


def test_mask_evaluation_on_the_models_device_equals_the_naive_loop(device):
    net = on(models.MLP(in_features=20, hidden=(16, 8)), device)
    masks = prune.random_node_masks(16, 5, 7, generator=torch.Generator().manual_seed(0))
    loader = batches((20,))
    fast = masking.evaluate_masks(net, "hidden.0", loader, keep=masks, chunk=5)
    slow = naive.evaluate_masks_naive(net, "hidden.0", loader, keep=masks)
    assert torch.allclose(fast.loss, slow.loss, atol=1e-5) and torch.allclose(fast.acc, slow.acc, atol=1e-5)
    assert devices.model_device(net).type == device.type  # nothing moved the model


@pytest.mark.parametrize(
    ("make", "layer", "shape"),
    [
        (lambda: models.MLP(in_features=20, hidden=(16, 12)), "hidden.1", (20,)),
        (
            lambda: models.Conv4Net(in_channels=1, image_size=8, widths=(4, 6, 5, 3), hidden=7),
            "conv2",
            (1, 8, 8),
        ),
    ],
)
def test_loss_change_on_the_models_device_equals_the_naive_loop(device, make, layer, shape):
    net = on(make(), device)
    loader = batches(shape)
    fast = importance.loss_change(net, layer, loader, chunk=4)
    slow = naive.loss_change_naive(net, layer, loader)
    assert fast.shape == slow.shape
    assert torch.allclose(fast.cpu(), slow.cpu(), atol=1e-4)


def test_taylor_scores_agree_across_devices(device):
    net = on(models.MLP(in_features=20, hidden=(16,)), "cpu")
    loader = batches((20,))
    reference = importance.taylor(net, "hidden.0", loader)
    moved = importance.taylor(on(models.MLP(in_features=20, hidden=(16,)), device), "hidden.0", loader)
    assert torch.allclose(moved.cpu(), reference, atol=1e-4)


def test_sensitivity_is_the_same_on_every_device(device):
    torch.manual_seed(0)
    net = models.vgg16(width=1 / 16).eval()
    loader = batches((3, 32, 32), n=2, size=16)
    layers, rates = ["features.0", "features.3"], [0.0, 0.5]
    reference = vcs.sensitivity(net, loader, layers, rates)
    moved = vcs.sensitivity(net.to(device), loader, layers, rates)
    pd.testing.assert_frame_equal(moved, reference, atol=1e-9, rtol=0)
    assert set(reference["filters left"]) == {2, 4}  # 4 filters at width 1/16, half removed at 0.5


@pytest.mark.parametrize("rank", ["vbmf", 0.9, 0.999999, [6, 8]])
@pytest.mark.parametrize("method", ["tucker2", "tucker1"])
def test_decomposition_with_every_rank_rule_stays_on_the_layers_device(device, method, rank):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, padding=1).to(device)
    if method == "tucker1" and isinstance(rank, list):
        rank = 8
    small = decompose.decompose_layer(conv, method, rank)
    assert {p.device.type for p in small.parameters()} == {device.type}
    x = torch.randn(2, 6, 7, 7, device=device)
    out = small(x)
    assert out.shape == conv(x).shape and out.device.type == device.type
    if rank in (0.999999, [6, 8], 8):  # full rank or all the energy: the dense layer back
        assert torch.allclose(out, conv(x), atol=1e-3)


@pytest.mark.parametrize("method", ["cp", "tt", "jaderberg"])
def test_other_conv_decompositions_run_on_the_layers_device(device, method):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1).to(device)
    small = decompose.decompose_layer(conv, method, 3)
    x = torch.randn(2, 4, 6, 6, device=device)
    assert small(x).shape == conv(x).shape
    assert {p.device.type for p in small.parameters()} == {device.type}


def test_flops_and_cpu_latency_leave_the_model_where_it_was(device):
    net = on(models.CifarCNN(), device)
    images = torch.randn(8, 3, 32, 32)
    assert measure.flops(net, images) == measure.flops(on(models.CifarCNN(), "cpu"), images)
    seconds = measure.time_images({"a": net, "b": net}, images, batch_size=4, repeats=1, warmup=0)
    assert list(seconds.index) == ["a", "b"] and (seconds > 0).all()
    table = measure.compare_latency({"a": net}, images, repeats=1, warmup=0)
    assert table.loc["a", "parameters"] == models.count_parameters(net)
    assert devices.model_device(net).type == device.type  # timed on a CPU copy, the model not moved
    if device.type == "cuda":
        gpu = measure.time_images({"a": net}, images, batch_size=4, repeats=1, warmup=0, device=device)
        assert gpu["a"] > 0


# --- training, fine-tuning and the cache, on every device ---------------------------------------


def config(**kw) -> TrainConfig:
    base = dict(model="mlp", dataset="mnist", model_kwargs={"hidden": [32]}, data_kwargs=SMALL,
                epochs=2, batch_size=64, seed=0)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_training_on_a_device_beats_chance_then_loads_from_the_cache_there(device, data_root):
    first = cache.train_cached(config(), root=data_root, device=device, progress=False)
    assert not first.cached and first.test["acc"] > 0.6
    assert devices.model_device(first.model).type == device.type
    second = cache.train_cached(config(), root=data_root, device=device, progress=False)
    assert second.cached and second.test == first.test
    assert devices.model_device(second.model).type == device.type


def test_training_on_a_device_resumes_after_an_interruption(device, data_root, monkeypatch):
    cfg = config(epochs=2)
    real_save = cache.save_verified

    def save_then_crash(path, obj, record):
        real_save(path, obj, record)
        if path.name == "checkpoint.pt" and obj["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(cache, "save_verified", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        cache.train_cached(cfg, root=data_root, device=device, progress=False)
    monkeypatch.setattr(cache, "save_verified", real_save)
    resumed = cache.train_cached(cfg, root=data_root, device=device, progress=False)
    assert list(resumed.history["epoch"]) == [1, 2] and not resumed.cached
    assert devices.model_device(resumed.model).type == device.type


def test_fine_tuning_stays_on_the_models_device_and_is_cached(device, data_root):
    trained = cache.train_cached(config(epochs=1), root=data_root, device=device, progress=False)
    splits = data.load_dataset("mnist", root=data_root, **SMALL)
    keep = torch.ones(32, dtype=torch.bool)
    keep[:16] = False
    pruned = prune.remove_nodes(trained.model, "hidden.0", keep)
    tuned = cache.fine_tune_cached(
        pruned, f"{trained.key}/half", splits, epochs=1, root=data_root, progress=False
    )
    assert not tuned.cached and devices.model_device(tuned.model).type == device.type
    assert tuned.test["acc"] >= tuned.before["acc"] - 0.02
    again = prune.remove_nodes(trained.model, "hidden.0", keep)
    cached = cache.fine_tune_cached(
        again, f"{trained.key}/half", splits, epochs=1, root=data_root, progress=False
    )
    assert cached.cached and cached.test == tuned.test


def test_a_model_cached_in_one_precision_is_never_loaded_for_another(data_root):
    fp32 = config(epochs=1)
    bf16 = config(epochs=1, precision="bfloat16")
    assert fp32.key() != bf16.key()
    cache.train_cached(fp32, root=data_root, device="cpu", progress=False)
    other = cache.train_cached(bf16, root=data_root, device="cpu", progress=False)
    assert not other.cached and other.test["acc"] > 0.5  # trained anew, under autocast
    assert cache.model_dir(bf16, data_root) != cache.model_dir(fp32, data_root)


def test_fine_tuning_precision_is_part_of_its_key(data_root):
    trained = cache.train_cached(config(epochs=1), root=data_root, device="cpu", progress=False)
    splits = data.load_dataset("mnist", root=data_root, **SMALL)
    a = cache.fine_tune_cached(trained.model, "x", splits, epochs=0, root=data_root, progress=False)
    b = cache.fine_tune_cached(
        trained.model, "x", splits, epochs=0, root=data_root, progress=False, precision="bfloat16"
    )
    assert a.key != b.key and not b.cached


# --- a chapter resolves its device before any work ----------------------------------------------


def test_a_chapter_refuses_an_unknown_device_before_any_work():
    namespace = {**chapters.BASELINES.parameters("smoke"), "device": "tpu"}
    with pytest.raises(ValueError, match=r"device='tpu' is not known; allowed values: auto, cpu, cuda"):
        chapters.BASELINES.start(namespace, display=False)


def test_a_chapter_names_its_device_and_precision(results_dir):
    run = chapters.BASELINES.start({**chapters.BASELINES.parameters("smoke"), "device": "cpu"}, display=False)
    assert run.device == torch.device("cpu") and run.precision == "float32"
    assert run.note.startswith("CPU (") and run.note.endswith("float32")
    assert run.report.params["computed on"] == run.note
