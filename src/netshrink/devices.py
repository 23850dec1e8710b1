"""One device policy: where models run, how batches follow them, and in which precision.

A chapter chooses the device once (`resolve_device`, its `device` parameter); every function
that takes a model and data moves each batch to the model's device with `to_device` and
switches eval/train mode with `mode`, which restores the previous mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "bfloat16", "bfloat16-if-native")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` -> CUDA when present, else the CPU; `cpu`, `cuda` (or `cuda:N`) as asked.

    Raises a ValueError naming the parameter, what was asked and what is available."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(f"device={device!r} must be a string; allowed values: {', '.join(DEVICES)}")
    name = device.strip().lower()
    available = "cpu, cuda" if cuda_available() else "cpu (no CUDA device on this machine)"
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not cuda_available():
            raise ValueError(
                f"device={device!r} was asked for, but CUDA is not available; available: {available}"
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ValueError(
                f"device={device!r}: no such CUDA device; this machine has {torch.cuda.device_count()}"
            )
        return torch.device(name)
    raise ValueError(
        f"device={device!r} is not known; allowed values: {', '.join(DEVICES)}; available: {available}"
    )


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 dot products in hardware (AVX512-BF16 or AMX), where
    bfloat16 autocast trains a conv net faster than float32 (VGG-16 at 0.375 width, batch 128:
    1.65x on a 2-core AMD EPYC with AVX512-BF16). Elsewhere bfloat16 is emulated and slow."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The training precision: `auto` -> bfloat16 autocast on CUDA, float32 on the CPU (which
    stays float32 so that CPU runs repeat exactly, on any CPU); `bfloat16-if-native` ->
    bfloat16 on CUDA and on a CPU that computes it in hardware (`cpu_has_native_bfloat16`),
    else float32; `float32` or `bfloat16` as asked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not known; allowed values: {', '.join(PRECISIONS)}")
    on_cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        return "bfloat16" if on_cuda else "float32"
    if precision == "bfloat16-if-native":
        return "bfloat16" if on_cuda or cpu_has_native_bfloat16() else "float32"
    return precision


def describe(device: torch.device | str) -> str:
    """'CPU (2 threads)' or 'NVIDIA H100 80GB HBM3 (cuda:0)', for captions."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)} (cuda:{index})"
    return f"CPU ({torch.get_num_threads()} threads)"


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model without any."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move a tensor, or the tensors of a tuple/list/dict, to `device` (no copy when already there)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


@contextmanager
def mode(model: nn.Module, training: bool = False) -> Iterator[nn.Module]:
    """Put `model` in train (`training=True`) or eval mode for the block; restore every
    submodule's previous mode afterwards, also on an exception."""
    saved = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for m, was in saved:
            m.training = was


@contextmanager
def in_memory_format(model: nn.Module, fmt: torch.memory_format) -> Iterator[nn.Module]:
    """`model` in memory format `fmt` (channels-last for conv nets) for the block; in the
    default format afterwards, also on an exception."""
    try:
        yield model.to(memory_format=fmt)
    finally:
        model.to(memory_format=torch.contiguous_format)


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously); nothing on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device | str, precision: str):
    """`torch.autocast` to bfloat16 when `precision` is bfloat16, else a no-op context."""
    if precision == "bfloat16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    if precision != "float32":
        raise ValueError(f"precision={precision!r} is not known; allowed values: float32, bfloat16")
    return nullcontext()


def uses_conv(model: nn.Module) -> bool:
    """True when the model holds a 2-d convolution (and so gains from channels-last tensors)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())
