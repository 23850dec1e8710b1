"""The Tensor decomposition chapter (seeds 000 to 003): decomposed input images as features,
the week-6 network decomposed and fine-tuned, the course report's CIFAR-10 experiments, and
five decompositions compared at matched parameter budgets.

Chapter glue between `decompose` / `input_features` (pure algorithms) and the notebook:
configurations of the networks to train, experiments returning DataFrames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, models, train
from netshrink.cache import TrainResult
from netshrink.compress import decompose, input_features, prune
from netshrink.devices import mode
from netshrink.train import TrainConfig

# ------------------------------------------------------------------ the seeds' numbers

SEED_INPUT = {  # seed 001 (week 5): full input against CP-decomposed input
    "D-T1": {"digits": (3, 4, 7), "full": (784, 3, 3145, 0.98), "decomposed": (3, 5, 33, 0.83)},
    "D-T2": {"digits": (3, 4, 9), "full": (784, 3, 3145, 0.96), "decomposed": (3, 5, 33, 0.68)},
    "D-T3": {"digits": None, "full": (784, 10, 8724, 0.88), "decomposed": (15, 15, 390, 0.64)},
}
SEED_TUCKER = {"full": (784, 3145, 0.93), 15: (15, 535, 0.70), 100: (100, 2320, 0.75), 200: (200, 4420, 0.83)}
SEED_LENET = {"parameters": (120_382, 59_560), "acc": (0.98277, 0.98227), "seconds": (1.807, 1.945)}
SEED_CIFAR_LOG = {  # 003 Figure 8, as printed: loop index -> (accuracy, seconds for the forward pass)
    1: (0.1134, 4.045), 2: (0.5086, 2.305), 3: (0.7772, 2.367), 4: (0.8459, 2.383),
    5: (0.8802, 2.583), 6: (0.8927, 2.922), 7: (0.8950, 2.756), 8: (0.8994, 3.014),
}  # fmt: skip
# The report's text says "at k = 4 ... 88.02 % ... 77 % of the time", which the log prints at
# index 5: its indices and k differ by one somewhere. We quote the text for k = 4.
SEED_CIFAR_TEXT = {"k4_acc": 0.8802, "k4_time_fraction": 0.77, "k8_acc": 0.90}
SEED_LENET_PLAN = {  # the week-6 slide's "Net after", read as our plan (l1's 200 is capped at 120)
    "conv1": ["tucker1", 2],
    "conv2": ["tucker2", [8, 4]],
    "l1": ["tucker2", [40, 120]],
    "l2": ["tucker1", 30],
}
SEED_LISTING = """Net(
  (conv1): Sequential(
    (0): Conv2d(1, 2, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2), bias=False)
    (1): Conv2d(2, 16, kernel_size=(1, 1), stride=(1, 1))
  )
  (conv2): Sequential(
    (0): Conv2d(16, 8, kernel_size=(1, 1), stride=(1, 1), bias=False)
    (1): Conv2d(8, 4, kernel_size=(5, 5), stride=(1, 1), bias=False)
    (2): Conv2d(4, 32, kernel_size=(1, 1), stride=(1, 1))
  )
  (pool): AvgPool2d(kernel_size=2, stride=2, padding=0)
  (dropout1): Dropout(p=0.2, inplace=False)
  (dropout2): Dropout2d(p=0.2, inplace=False)
  (l1): Sequential(
    (0): Linear(in_features=800, out_features=40, bias=False)
    (1): Linear(in_features=40, out_features=200, bias=False)
    (2): Linear(in_features=200, out_features=120, bias=True)
  )
  (l2): Sequential(
    (0): Linear(in_features=120, out_features=30, bias=False)
    (1): Linear(in_features=30, out_features=84, bias=True)
  )
  (l_out): Linear(in_features=84, out_features=10, bias=True)
)"""

# ------------------------------------------------------------------ input decomposition


@dataclass
class Classifier:
    """An MLP trained on some representation of the images, with its test predictions."""

    label: str
    inputs: int
    hidden: int
    parameters: int
    test_acc: float
    predictions: torch.Tensor
    history: pd.DataFrame


def train_classifier(
    label: str,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    test_xy: tuple[torch.Tensor, torch.Tensor],
    hidden: int,
    n_classes: int,
    *,
    epochs: int,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
) -> Classifier:
    """An MLP with one hidden layer of `hidden` ReLU nodes, trained with Adam on (x, y) on
    `device` (initialised on the CPU, so alike on every device); predictions come back on the CPU."""
    (x, y), (x_test, y_test) = train_xy, test_xy
    torch.manual_seed(seed)
    model = models.MLP(in_features=x[0].numel(), hidden=(hidden,), n_classes=n_classes).to(device)
    train_loader = data.make_loader(
        data.ImageDataset(x, y), batch_size, shuffle=True, seed=seed, device=device
    )
    test_loader = data.make_loader(data.ImageDataset(x_test, y_test), 10_000, device=device)
    history = train.fit(
        model, torch.optim.Adam(model.parameters(), lr=lr), train_loader, epochs,
        test_loader=test_loader, seed=seed, progress=False,
    )  # fmt: skip
    with torch.no_grad(), mode(model, training=False):
        predictions = torch.cat([model(xb).argmax(1).cpu() for xb, _ in test_loader])
    acc = float((predictions == y_test.cpu()).float().mean())
    return Classifier(
        label, x[0].numel(), hidden, models.count_parameters(model), acc, predictions, pd.DataFrame(history)
    )


@dataclass
class InputExperiment:
    """Full images against decomposed images for one digit set: classifiers and loadings."""

    classifiers: list[Classifier]
    bases: dict[str, input_features.ImageBasis]
    train_labels: torch.Tensor


def input_experiment(
    splits: data.DataSplits,
    method: str,
    ranks: Sequence[int],
    *,
    hidden_full: int,
    hidden_decomposed: int,
    epochs: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> InputExperiment:
    """Train an MLP on the full images and one on the loadings of each rank in `ranks` (the
    training images decomposed by `method`, the test images projected on their factors); the
    classifiers train on `device`, the decompositions run on the CPU."""
    train_xy = (splits.train.images.flatten(1), splits.train.labels)
    test_xy = (splits.test.images.flatten(1), splits.test.labels)
    n_classes = splits.n_classes
    classifiers = [
        train_classifier(
            "full data", train_xy, test_xy, hidden_full, n_classes, epochs=epochs, seed=seed, device=device
        )
    ]
    bases = {}
    for rank in ranks:
        basis = input_features.decompose_images(splits.train.images, method, rank, seed=seed)
        tr, te = input_features.standardise(basis.loadings, input_features.project(splits.test.images, basis))
        label = f"{method.upper() if method == 'cp' else method.title()} rank {rank}"
        bases[label] = basis
        classifiers.append(
            train_classifier(
                label,
                (tr, splits.train.labels),
                (te, splits.test.labels),
                hidden_decomposed,
                n_classes,
                epochs=epochs,
                seed=seed,
                device=device,
            )  # fmt: skip
        )
    return InputExperiment(classifiers, bases, splits.train.labels)


def input_table(experiment: InputExperiment, seed_columns: Mapping[str, tuple] | None = None) -> pd.DataFrame:
    """D-T1..D-T4: inputs, hidden nodes, parameters and test accuracy per classifier, with the
    seed's values (inputs, hidden, parameters, accuracy) as extra columns."""
    rows = {
        c.label: {
            "inputs": c.inputs,
            "hidden nodes": c.hidden,
            "parameters": c.parameters,
            "test accuracy (%)": 100 * c.test_acc,
            "fit error of the images": next(
                (b.relative_error for name, b in experiment.bases.items() if name == c.label), float("nan")
            ),
        }
        for c in experiment.classifiers
    }
    for label, (inputs, hidden, params, acc) in (seed_columns or {}).items():
        rows[f"{label} (seed)"] = {
            "inputs": inputs,
            "hidden nodes": hidden,
            "parameters": params,
            "test accuracy (%)": 100 * acc,
            "fit error of the images": float("nan"),
        }
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ the week-6 network


def lenet_config(*, epochs: int, seed: int = 0, data_kwargs: dict | None = None) -> TrainConfig:
    """Seed 002's `Net` on MNIST with Adam 1e-3, batch 64."""
    return TrainConfig("lenet", "mnist", {}, dict(data_kwargs or {}), optimizer="adam", lr=1e-3,
                       epochs=epochs, batch_size=64, seed=seed)  # fmt: skip


def origin(base: TrainResult, plan: Mapping[str, Any]) -> str:
    """What made a decomposed model: the trained model's cache key and the plan."""
    return json.dumps({"model": base.key, "plan": plan}, sort_keys=True)


def compare_models(
    named: Mapping[str, nn.Module],
    accuracy: Mapping[str, float],
    images: torch.Tensor,
    *,
    batch_size: int,
    repeats: int,
) -> pd.DataFrame:
    """`measure.side_by_side` with the test accuracy (%) of each model: parameters, MFLOPs per
    image, and the median seconds to classify all of `images` in batches, in the default and the
    channels-last layout; `speedup` is over the first model."""
    table = measure.side_by_side(named, images, batch_size, repeats)
    table.insert(2, "test accuracy (%)", [100 * accuracy[k] for k in named])
    return table.rename(
        columns={"seconds": f"s for {len(images):,} images", "seconds, channels last": "s, channels last"}
    )


# ------------------------------------------------------------------ CIFAR-10 (seed 003)


def cifar_config(
    *, epochs: int, seed: int = 0, augment: bool = True, data_kwargs: dict | None = None
) -> TrainConfig:
    """Seed 003's CNN with max-pooling (conv 32, 32, 64, 64 + dense 512), Adam 1e-3, batch 64,
    crop and flip augmentation."""
    return TrainConfig(
        "cifar_cnn", "cifar10", {"pool": True}, {**(data_kwargs or {}), "augment": augment},
        optimizer="adam", lr=1e-3, epochs=epochs, batch_size=64, seed=seed,
    )  # fmt: skip


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the Conv2d layers of `model`, in order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def magnitude_sweep(
    model: nn.Module, loader: Iterable, layers: Sequence[str], rates: Sequence[float]
) -> pd.DataFrame:
    """D-F8: test accuracy with the fraction `rate` of one layer's smallest weights zeroed, no
    retraining; one row per (layer, rate)."""
    rows = []
    for layer in layers:
        for rate in rates:
            acc = train.evaluate(prune.magnitude_prune(model, layer, rate), loader)["acc"]
            rows.append({"layer": layer, "rate": rate, "test accuracy (%)": 100 * acc})
    return pd.DataFrame(rows)


def tucker2_error(conv: nn.Conv2d, ranks: Sequence[int]) -> float:
    """Relative Frobenius error of the kernel rebuilt from a Tucker-2 decomposition at `ranks`."""
    first, middle, last = decompose.tucker2_conv(conv, ranks)
    rebuilt = torch.einsum(
        "tb,bayx,as->tsyx", last.weight[:, :, 0, 0], middle.weight, first.weight[:, :, 0, 0]
    )
    w = conv.weight.detach()
    return float((rebuilt.detach() - w).norm() / w.norm())


def reconstruction_curves(conv: nn.Conv2d, ranks: Sequence[int]) -> pd.DataFrame:
    """D-F9: the kernel's relative reconstruction error against R2 with R1 full, and against R1
    with R2 full (003 Figure 6)."""
    T, S = conv.weight.shape[:2]
    rows = []
    for r in ranks:
        if r <= T:
            rows.append(
                {"varied": f"R2 varied, R1 = {S}", "rank": r, "relative error": tucker2_error(conv, (S, r))}
            )
        if r <= S:
            rows.append(
                {"varied": f"R1 varied, R2 = {T}", "rank": r, "relative error": tucker2_error(conv, (r, T))}
            )
    return pd.DataFrame(rows)


def k_plan(model: nn.Module, k: int, layers: Sequence[str], n: int = 8) -> dict[str, list]:
    """Tucker-2 of every layer in `layers` with ranks k/n of its input and output channels
    (rounded up, at least 1)."""
    if not 1 <= k <= n:
        raise ValueError(f"k={k} is out of range; allowed: 1..{n}")
    plan = {}
    for name in layers:
        T, S = model.get_submodule(name).weight.shape[:2]
        plan[name] = ["tucker2", [max(1, math.ceil(k * S / n)), max(1, math.ceil(k * T / n))]]
    return plan


# ------------------------------------------------------------------ methods at matched budgets


def budget_plan(
    model: nn.Module, method: str, layers: Sequence[str], fraction: float, n_blocks: int = 2
) -> dict[str, dict[str, Any]]:
    """For each conv in `layers`, `method` at the largest rank within `fraction` of its parameters."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction} is out of range; allowed: (0, 1)")
    options = {"n_blocks": n_blocks} if method == "btd" else {}
    plan = {}
    for name in layers:
        layer = model.get_submodule(name)
        budget = int(fraction * models.count_parameters(layer))
        plan[name] = {"method": method, "rank": decompose.rank_for_budget(layer, method, budget, **options),
                      **options}  # fmt: skip
    return plan


def layers_parameters(model: nn.Module, names: Iterable[str]) -> int:
    """Parameters of the named submodules of `model` (the layers a plan replaces)."""
    return sum(models.count_parameters(model.get_submodule(name)) for name in names)


def describe_plan(plan: Mapping[str, Any]) -> str:
    """'conv2: tucker2 [8, 8]; l1: ...' for tables."""
    parts = []
    for name, spec in decompose.normalise_plan(plan).items():
        extra = f" x{spec['n_blocks']} blocks" if "n_blocks" in spec else ""
        parts.append(f"{name}: {spec['method']} {spec['rank']}{extra}")
    return "; ".join(parts)
