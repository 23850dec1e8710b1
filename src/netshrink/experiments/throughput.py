"""How close training comes to the machine's limit: achieved GFLOP/s of each training step the
chapters run, beside the machine's own matrix-multiply GFLOP/s measured in the same run.

    python -m netshrink.experiments.throughput            # the table, on this machine's threads

FLOPs are torch's `FlopCounterMode` count of one step's forward and backward pass (a multiply-add
counts 2); the step is `train.fit`'s own, on synthetic batches of the configuration's batch size,
so data loading is left out. The limit is a square matrix product of the same threads in the
step's precision: float32, or bfloat16 for a step trained under bfloat16 autocast (the full VGG-16
on a CPU that computes bfloat16 in hardware, `devices.cpu_has_native_bfloat16`).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netshrink import devices, models, train
from netshrink.checks import check_int
from netshrink.experiments import baselines, cifar_decomposition, deep_importance, tensor_decomposition
from netshrink.experiments.vgg_case_study import vgg_config

INPUT_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def matmul_gflops(size: int = 2048, repeats: int = 5, precision: str = "float32") -> float:
    """GFLOP/s of a (size x size) matrix product in `precision` (float32 or bfloat16) on the CPU
    with torch's threads: the limit a training step can approach. The best of `repeats` after a
    warm-up."""
    if precision not in train.TRAIN_PRECISIONS:
        raise ValueError(
            f"precision={precision!r} is not known; allowed values: {', '.join(train.TRAIN_PRECISIONS)}"
        )
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def step_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one training step's forward and backward pass on the batch (x, y)."""
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def training_gflops(config: train.TrainConfig, steps: int = 10, warmup: int = 3) -> dict[str, float]:
    """Images per second and GFLOP/s of `config`'s training step on the CPU: `train.fit` over
    `steps` synthetic batches of the configuration's batch size (after `warmup` steps), in the
    configuration's precision."""
    check_int("steps", steps, 1)
    check_int("warmup", warmup, 0)
    torch.manual_seed(0)
    model = models.build_model(config.model, **config.model_kwargs)
    optimizer = train.make_optimizer(config, model.parameters())
    shape = INPUT_SHAPES[config.dataset]
    x, y = torch.randn(config.batch_size, *shape), torch.randint(0, 10, (config.batch_size,))
    flops = step_flops(model, x, y)
    if warmup:
        train.fit(model, optimizer, [(x, y)] * warmup, 1, progress=False, precision=config.precision)
    history = train.fit(model, optimizer, [(x, y)] * steps, 1, progress=False, precision=config.precision)
    seconds = history[0]["train_seconds"] / steps
    return {
        "precision": config.precision,
        "batch": config.batch_size,
        "GFLOP per step": flops / 1e9,
        "images/s": config.batch_size / seconds,
        "GFLOP/s": flops / seconds / 1e9,
    }


def chapter_configs() -> dict[str, train.TrainConfig]:
    """The training configuration of every model the chapters train, by a short name; the full
    VGG-16 also in bfloat16 where this CPU computes it in hardware, as the full profile trains it."""
    runs = {r.key: r.config for r in baselines.baseline_runs()}
    configs = {
        "MLP 2x512 (Baselines)": runs["mlp"],
        "one conv layer (Baselines)": runs["one_conv"],
        "two conv layers (Baselines)": runs["two_conv"],
        "CIFAR-10 CNN, strided (Baselines)": runs["cnn_lr0.001"],
        "CIFAR-10 CNN, max-pool (Baselines, Tensor decomposition)": cifar_decomposition.cifar_config(
            epochs=1
        ),
        "MLP 128 (Random pruning, Node importance)": train.TrainConfig(
            "mlp", "mnist", {"hidden": [128]}, batch_size=32
        ),
        "4-conv CNN (Node importance)": deep_importance.conv4_config(epochs=1, dataset="fashion-mnist"),
        "week-6 network (Tensor decomposition)": tensor_decomposition.lenet_config(epochs=1),
        "VGG-16 width 0.5 (VGG case study, full on the CPU)": vgg_config(width=0.5, epochs=1),
        "VGG-16 width 1 (VGG case study)": vgg_config(width=1.0, epochs=1),
    }
    if devices.cpu_has_native_bfloat16():
        configs["VGG-16 width 0.5, bfloat16 (full on this CPU)"] = dataclasses.replace(
            vgg_config(width=0.5, epochs=1), precision="bfloat16"
        )
    return configs


def throughput_table(
    configs: Mapping[str, train.TrainConfig] | None = None, steps: int = 10, matmul_size: int = 2048
) -> pd.DataFrame:
    """GFLOP/s of each training step beside the matrix-multiply limit in its precision, measured
    in the same run (before and after the models, the higher kept), and the share of it reached.
    `attrs["limits"]`: GFLOP/s by precision; `attrs["limit"]`: the float32 one."""
    configs = chapter_configs() if configs is None else configs
    precisions = sorted({"float32", *(c.precision for c in configs.values())})
    limits = {p: matmul_gflops(matmul_size, precision=p) for p in precisions}
    rows = {name: training_gflops(config, steps=steps) for name, config in configs.items()}
    limits = {p: max(limits[p], matmul_gflops(matmul_size, precision=p)) for p in precisions}
    table = pd.DataFrame(rows).T.rename_axis("training step")
    table["% of the matmul limit"] = 100 * table["GFLOP/s"] / table["precision"].map(limits)
    table.attrs["limits"] = limits
    table.attrs["limit"] = limits["float32"]
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model (default 10)")
    args = parser.parse_args(argv)
    table = throughput_table(steps=args.steps)
    for precision, limit in table.attrs["limits"].items():
        print(f"{precision} matrix product: {limit:.1f} GFLOP/s with {torch.get_num_threads()} threads")
    print(table.round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
