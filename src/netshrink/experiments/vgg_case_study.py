"""The VGG-16 case study chapter (seed 004, chapter 6): a VGG-16 trained on CIFAR-10, reduced by
filter pruning (Li et al. 2017) and Tucker decomposition (Kim et al. 2016), each step fine-tuned.

Chapter glue between `prune` / `decompose` (pure algorithms) and the notebook.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, models
from netshrink.compress import decompose, prune
from netshrink.devices import mode, model_device, to_device
from netshrink.train import TrainConfig

_PUBLISHED_ROWS = [  # (result, parameters, M multiply-adds, test accuracy %)
    ("Li et al. 2017, VGG-16 (their baseline)", 15.0e6, 313.0, 93.25),
    ("Li et al. 2017, VGG-16-pruned-A", 5.4e6, 206.0, 93.40),
    ("Liu et al. 2017, VGGNet (their baseline)", 20.04e6, 398.5, 93.66),
    ("Liu et al. 2017, VGGNet 70 % channels pruned", 2.30e6, 195.5, 93.80),
]
PUBLISHED = pd.DataFrame(
    _PUBLISHED_ROWS, columns=["result", "parameters", "M multiply-adds", "test accuracy (%)"]
).set_index("result")
"""Published CIFAR-10 results, from the papers' tables (Li et al. 2017, Table 1: error 6.75 and
6.60 %, 3.13e8 and 2.06e8 multiply-adds; Liu et al. 2017, Table 1: error 6.34 and 6.20 %, 7.97e8
and 3.91e8 FLOPs counting a multiply-add as two, halved here; their VGGNet has 19 layers)."""


def vgg_config(
    *, width: float, epochs: int, lr: float = 0.05, seed: int = 0, data_kwargs: dict | None = None
) -> TrainConfig:
    """VGG-16 with batch norm for 32x32 inputs, SGD with momentum 0.9 and weight decay 5e-4, a
    cosine schedule, batch 128, crop and flip augmentation."""
    return TrainConfig(
        "vgg16", "cifar10", {"width": width}, {**(data_kwargs or {}), "augment": True}, optimizer="sgd",
        lr=lr, momentum=0.9, weight_decay=5e-4, schedule="cosine", epochs=epochs, batch_size=128, seed=seed,
    )  # fmt: skip


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the Conv2d layers, in order (features.0, features.3, ... for VGG)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _head(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.classifier(torch.flatten(model.avgpool(x), 1))


@torch.no_grad()
def sensitivity(
    model: nn.Module, loader: Iterable, layers: Sequence[str], rates: Sequence[float]
) -> pd.DataFrame:
    """V-F1: test accuracy with the fraction `rate` of one conv layer's filters of smallest L1
    norm removed, no retraining (Li et al. 2017, Figure 2b). The features before the layer are
    computed once per layer and reused for every rate, on the model's device. One row per (layer, rate)."""
    device = model_device(model)
    batches = [to_device((x, y), device) for x, y in loader]
    n = sum(len(y) for _, y in batches)
    if n == 0:
        raise ValueError("loader yielded no examples; sensitivity needs at least one batch")
    rows = []
    with mode(model, training=False):
        for layer in layers:
            index = int(layer.split(".")[1])
            prefix = [model.features[:index](x) for x, _ in batches]
            for rate in rates:
                keep = prune.smallest_l1_filters(model.get_submodule(layer), rate)
                pruned = prune.remove_filters(model, layer, keep).eval()
                correct = sum(
                    (_head(pruned, pruned.features[index:](p)).argmax(1) == y).sum()
                    for p, (_, y) in zip(prefix, batches, strict=True)
                )
                rows.append({"layer": layer, "rate": rate, "filters left": int(keep.sum()),
                             "accuracy (%)": 100 * int(correct) / n})  # fmt: skip
    return pd.DataFrame(rows)


def rates_from_sensitivity(
    table: pd.DataFrame, base_acc: float, tol: float, max_rate: float
) -> dict[str, float]:
    """Per layer, the largest rate whose accuracy without retraining stays within `tol` points of
    `base_acc` (in %), at most `max_rate`; 0 when none does."""
    rates = {}
    for layer, group in table.groupby("layer", sort=False):
        ok = group[(group["accuracy (%)"] >= base_acc - tol) & (group["rate"] <= max_rate)]
        rates[layer] = float(ok["rate"].max()) if len(ok) else 0.0
    return rates


def prune_filters(model: nn.Module, rates: Mapping[str, float]) -> nn.Module:
    """Remove, in each named conv layer in turn, the fraction `rates[layer]` of filters of smallest
    L1 norm (on the weights the earlier removals left, Li et al.'s greedy variant), physically,
    with their batch-norm channels and the next layer's inputs."""
    for layer, rate in rates.items():
        if layer not in conv_layers(model):
            allowed = ", ".join(conv_layers(model))
            raise ValueError(f"layer={layer!r} is not a conv layer; allowed values: {allowed}")
        keep = prune.smallest_l1_filters(model.get_submodule(layer), rate)
        if not keep.all():
            model = prune.remove_filters(model, layer, keep)
    return model


def tucker_plan(model: nn.Module, rule: str | float = "vbmf", skip_first: bool = True) -> dict[str, list]:
    """Tucker-2 of every conv (but the first, 3 input channels) with ranks by `rule`."""
    layers = conv_layers(model)[1 if skip_first else 0 :]
    return decompose.resolve_plan(model, {name: ["tucker2", rule] for name in layers})


def classifier_plan(model: nn.Module, rule: str | float = "vbmf") -> dict[str, list]:
    """Tucker-2 of the hidden classifier layers (all Linear layers but the output)."""
    linears = [n for n, m in model.classifier.named_children() if isinstance(m, nn.Linear)][:-1]
    return decompose.resolve_plan(model, {f"classifier.{n}": ["tucker2", rule] for n in linears})


def file_size(model: nn.Module) -> int:
    """Bytes of the model's state dict as `torch.save` writes it."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def step_table(
    steps: Mapping[str, nn.Module],
    accuracy: Mapping[str, float],
    images: torch.Tensor,
    *,
    batch_size: int,
    repeats: int,
) -> pd.DataFrame:
    """V-T2: `measure.side_by_side` as milliseconds per batch, with the test accuracy, the saved
    file size and the parameter ratio to the first model."""
    table = measure.side_by_side(steps, images, batch_size, repeats)
    per_batch = 1000 * batch_size / len(images)
    table.insert(2, "test accuracy (%)", [100 * accuracy[k] for k in steps])
    table.insert(3, f"ms per {batch_size} images", table.pop("seconds") * per_batch)
    table.insert(4, "ms, channels last", table.pop("seconds, channels last") * per_batch)
    table.insert(5, "file size (kB)", [file_size(m) / 1000 for m in steps.values()])
    table.insert(6, "parameters ratio", table["parameters"].iloc[0] / table["parameters"])
    return table


def published_table() -> pd.DataFrame:
    """The published results, with our untrained VGG-16 at full width counted the same way."""
    full = models.vgg16(width=1.0)
    mult_adds = measure.flops(full, torch.zeros(1, 3, 32, 32)) / 2e6
    ours = {
        "parameters": models.count_parameters(full),
        "M multiply-adds": mult_adds,
        "test accuracy (%)": float("nan"),
    }
    return pd.concat([PUBLISHED, pd.DataFrame({"our VGG-16 at full width (counted, multiply-adds)": ours}).T])


def data_kwargs(val_size: int, train_size: int | None, test_size: int | None, seed: int) -> dict:
    """The data arguments of the chapter's CIFAR-10 splits."""
    data.check_dataset("cifar10")
    return {"val_size": val_size, "train_size": train_size, "test_size": test_size, "seed": seed}
