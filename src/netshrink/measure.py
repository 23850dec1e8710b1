"""What a compressed model costs: parameters, FLOPs and measured inference time.

Latencies of the models being compared are measured in one run, interleaved: `time_images` lets
the models take turns batch by batch, `time_calls` call by call, so that a change in the
machine's load hits them all alike.

Latency tables are CPU measurements on purpose (the book is about CPU inference): `time_images`,
`compare_latency` and `side_by_side` time copies of the models on `device` (the CPU by default),
whatever device the models were trained on; `timing_note` says so in a caption. On a GPU every
timed call is synchronised, so that it measures the work and not its launch.
"""

from __future__ import annotations

import copy
import functools
import io
import random
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netshrink.checks import check_int
from netshrink.devices import describe, mode, model_device, synchronize
from netshrink.models import count_parameters

T = TypeVar("T")


def timing_note(device: torch.device | str = "cpu") -> str:
    """Where timings were taken, for captions: 'CPU (2 threads)', or the GPU's name."""
    return describe(device)


@torch.no_grad()
def flops(model: nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs for one example shaped like x[0] (a multiply-add counts 2), by torch's
    FlopCounterMode, on the model's device."""
    with mode(model, training=False), FlopCounterMode(display=False) as counter:
        model(x[:1].to(model_device(model)))
    return int(counter.get_total_flops())


def time_calls(
    calls: Mapping[str, Callable[[], T]],
    repeats: int = 3,
    warmup: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, float], dict[str, T]]:
    """Median seconds of each zero-argument call, the calls made in turn within each repeat (so
    that a change in the machine's load hits them all alike), and the last result of each.
    With a CUDA `device`, the device is synchronised before and after each call."""
    times, results = time_repeats(calls, repeats, warmup, device)
    return {name: float(pd.Series(t).median()) for name, t in times.items()}, results


def time_repeats(
    calls: Mapping[str, Callable[[], T]],
    repeats: int = 3,
    warmup: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, list[float]], dict[str, T]]:
    """`time_calls` with every repeat's seconds kept (name -> `repeats` seconds, in order), for
    the spread of a timing."""
    if not calls:
        raise ValueError("calls must name at least one call")
    check_int("repeats", repeats, 1)
    check_int("warmup", warmup, 0)
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    results: dict[str, T] = {}
    for _ in range(repeats):
        for name, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            results[name] = call()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times, results


def _copies(
    models: Mapping[str, nn.Module], device: torch.device | str, fmt: torch.memory_format
) -> dict[str, nn.Module]:
    """Eval-mode copies of the models on `device` in memory format `fmt`; the originals stay as
    they are (on whatever device they were trained)."""
    if not models:
        raise ValueError("models must name at least one model")
    return {name: copy.deepcopy(m).to(device).to(memory_format=fmt).eval() for name, m in models.items()}


def _interleaved(
    models: Mapping[str, nn.Module],
    run: Callable[[nn.Module], object],
    repeats: int,
    warmup: int,
    device: torch.device | str,
) -> dict[str, float]:
    """Median seconds of `run(model)` per model (copies on `device`, eval mode, no autograd), in turn."""
    copies = _copies(models, device, torch.contiguous_format)
    with torch.inference_mode():
        calls = {name: functools.partial(run, m) for name, m in copies.items()}
        return time_calls(calls, repeats, warmup, device=device)[0]


def time_images_runs(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    batch_size: int = 1000,
    repeats: int = 10,
    warmup: int = 1,
    channels_last: bool = False,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Seconds to classify all `images` in batches of `batch_size`, per repeat (rows) and model
    (columns), on copies of the models on `device` (the CPU unless asked otherwise).

    The models take turns batch by batch, in a new random order for each batch, so that a slow
    spell of the machine, or the caches left by the model before (a large model evicts a small
    one's weights), fall on all of them alike; each repeat sums a model's batch times. With
    `channels_last` the models and the images use that memory format (oneDNN's fast path for
    convolutions on CPU)."""
    check_int("batch_size", batch_size, 1)
    check_int("repeats", repeats, 1)
    check_int("warmup", warmup, 0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    models = _copies(models, device, fmt)
    x = images.to(device)
    x = x.contiguous(memory_format=fmt) if x.ndim == 4 else x
    batches = list(torch.split(x, batch_size))
    names = list(models)
    rng = random.Random(0)  # a fixed sequence of orders: repeatable, and no model always follows the same one
    totals: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for m in models.values():
            for _ in range(warmup):
                for xb in batches:
                    m(xb)
        for _ in range(repeats):
            run = dict.fromkeys(names, 0.0)
            for xb in batches:
                order = rng.sample(names, len(names))
                calls = {name: functools.partial(models[name], xb) for name in order}
                seconds, _ = time_calls(calls, repeats=1, device=device)
                for name, value in seconds.items():
                    run[name] += value
            for name, value in run.items():
                totals[name].append(value)
    return pd.DataFrame(totals).rename_axis("repeat")


def time_images(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    batch_size: int = 1000,
    repeats: int = 10,
    warmup: int = 1,
    channels_last: bool = False,
    device: torch.device | str = "cpu",
) -> pd.Series:
    """Median seconds to classify all `images` in batches of `batch_size`, per model
    (`time_images_runs`, whose note says how the models take turns)."""
    runs = time_images_runs(models, images, batch_size, repeats, warmup, channels_last, device)
    return runs.median().rename("seconds")


def compare_latency(
    models: Mapping[str, nn.Module],
    x: torch.Tensor,
    repeats: int = 20,
    warmup: int = 3,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Parameters, FLOPs per example and the median wall time of a forward pass on the batch
    `x`, for each model (copies on `device`, the CPU by default), interleaved. `speedup` is over
    the first model. One row per model."""
    x = x.to(device)
    median = _interleaved(models, lambda m: m(x), repeats, warmup, device)
    first = next(iter(models))
    return pd.DataFrame(
        {
            "parameters": {name: count_parameters(m) for name, m in models.items()},
            "MFLOPs": {name: flops(m, x) / 1e6 for name, m in models.items()},
            "ms per batch": {name: 1000 * t for name, t in median.items()},
            "speedup": {name: median[first] / t for name, t in median.items()},
        }
    ).rename_axis("model")


def side_by_side(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    batch_size: int,
    repeats: int,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Parameters, MFLOPs per image and the median seconds to run all `images` in batches, in the
    default and the channels-last layout, every model (copies on `device`, the CPU by default)
    timed in turn in one run; speedups are over the first model. One row per model; the default
    layout's seconds of every repeat are kept in `table.attrs["runs"]` (model -> list, in the
    order of `time_images_runs`' repeats)."""
    first = next(iter(models))
    runs = time_images_runs(models, images, batch_size, repeats, device=device)
    default = runs.median()
    last = time_images(models, images, batch_size, repeats, channels_last=True, device=device)
    table = pd.DataFrame(
        {
            "parameters": {k: count_parameters(m) for k, m in models.items()},
            "MFLOPs per image": {k: flops(m, images[:1]) / 1e6 for k, m in models.items()},
            "seconds": default,
            "seconds, channels last": last,
            "speedup": default[first] / default,
            "speedup, channels last": last[first] / last,
        }
    ).rename_axis("model")
    table.attrs["runs"] = runs.to_dict(orient="list")  # model -> the default layout's seconds per repeat
    return table


def file_size(model: nn.Module) -> int:
    """Bytes of the model's state dict as `torch.save` writes it."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@torch.no_grad()
def layer_inputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input each named layer of `model` receives in a forward pass of `x`."""
    inputs: dict[str, torch.Tensor] = {}

    def keep(name: str, _module: nn.Module, args: tuple) -> None:
        inputs[name] = args[0]

    hooks = [model.get_submodule(n).register_forward_pre_hook(functools.partial(keep, n)) for n in names]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return inputs


@torch.no_grad()
def time_layers(
    models: Mapping[str, nn.Module], names: list[str], x: torch.Tensor, repeats: int = 10, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Median seconds of each named layer of each model alone, {layer: {model: seconds}}, every
    layer on the input the same-named layer of the first model receives from the batch `x`,
    all timed in turn in one run (`time_calls`: layer by layer, model by model)."""
    first = next(iter(models.values()))
    inputs = layer_inputs(first, names, x)
    calls = {
        f"{name} {label}": functools.partial(m.get_submodule(name), inputs[name])
        for name in names
        for label, m in models.items()
    }
    seconds, _ = time_calls(calls, repeats=repeats, warmup=warmup)
    return {name: {label: seconds[f"{name} {label}"] for label in models} for name in names}
