"""What a compressed model costs: parameters, FLOPs and measured inference time.

Latencies of the models being compared are measured in one run, interleaved (each repeat
times every model once, in turn), so that a change in the machine's load hits them all alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netshrink.models import count_parameters


@torch.no_grad()
def flops(model: nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs for one example shaped like x[0] (a multiply-add counts 2), by torch's
    FlopCounterMode."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(x[:1])
    model.train(was_training)
    return int(counter.get_total_flops())


def compare_latency(
    models: Mapping[str, nn.Module], x: torch.Tensor, repeats: int = 20, warmup: int = 3
) -> pd.DataFrame:
    """Parameters, FLOPs per example and the median wall time of a forward pass on the batch
    `x`, for each model, interleaved. `speedup` is over the first model. One row per model."""
    if not models:
        raise ValueError("models must name at least one model")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats} must be >= 1 and warmup={warmup} >= 0")
    states = {name: m.training for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for m in models.values():
            m.eval()
            for _ in range(warmup):
                m(x)
        for _ in range(repeats):
            for name, m in models.items():
                start = time.perf_counter()
                m(x)
                times[name].append(time.perf_counter() - start)
    for name, m in models.items():
        m.train(states[name])
    first = next(iter(models))
    median = {name: float(pd.Series(t).median()) for name, t in times.items()}
    return pd.DataFrame(
        {
            "parameters": {name: count_parameters(m) for name, m in models.items()},
            "MFLOPs": {name: flops(m, x) / 1e6 for name, m in models.items()},
            "ms per batch": {name: 1000 * t for name, t in median.items()},
            "speedup": {name: median[first] / t for name, t in median.items()},
        }
    ).rename_axis("model")
