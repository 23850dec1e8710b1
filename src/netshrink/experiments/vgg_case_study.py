"""The VGG-16 case study chapter (draft 004, chapter 6): a VGG-16 trained on CIFAR-10, reduced by
filter pruning (Li et al. 2017) and Tucker decomposition (Kim et al. 2016), each step fine-tuned.
The pruning rates come from the accuracy each layer loses (Li et al.'s sensitivity), at the
smallest tolerance whose network runs a target speedup faster, measured; Tucker-2 goes to every
conv, or to those it makes faster, measured layer by layer.

Chapter glue between `prune` / `decompose` (pure algorithms) and the notebook.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, models, published, train
from netshrink.cache import FineTuned, TrainResult
from netshrink.compress import decompose
from netshrink.compress.filters import prune_filters
from netshrink.compress.fold import fold_batch_norm
from netshrink.compress.plans import classifier_plan, tucker_plan
from netshrink.experiments.tensor_decomposition import FineTune, measure_models
from netshrink.experiments.vgg_prose import (  # the page's words: the chapter imports them from here
    base_findings,
    fine_tuning_recipe,
    network_name,
    reduction_findings,
    sensitivity_findings,
    training_recipe,
    tucker_findings,
)  # fmt: skip
from netshrink.experiments.vgg_rates import (  # the rates, imported from here by the chapter
    ChosenRates,
    rates_for_speedup,
    rates_from_sensitivity,
    sensitivity,
    tolerance_candidates,
)  # fmt: skip
from netshrink.progress import update as report_progress
from netshrink.train import TrainConfig

__all__ = [
    "TUCKER_LAYERS", "ChosenRates", "Reduction", "base_findings", "classifier_plan", "data_kwargs",
    "faster_in_tucker", "fine_tuning_recipe", "network_name", "prune_filters", "published_table",
    "rates_for_speedup", "rates_from_sensitivity", "reduce_vgg", "reduction_findings", "sensitivity",
    "sensitivity_findings", "step_table", "tolerance_candidates", "training_recipe", "tucker_findings",
    "tucker_plan", "vgg_config",
]  # fmt: skip

TUCKER_LAYERS = ("all", "faster")  # Tucker-2 of every conv but the first, or of those it makes faster


def vgg_config(
    *,
    width: float,
    epochs: int,
    lr: float = 0.05,
    seed: int = 0,
    data_kwargs: dict | None = None,
    schedule: str = "cosine",
    label_smoothing: float = 0.0,
    weight_decay: float = 5e-4,
    dropout: float = models.VGG_DROPOUT,
) -> TrainConfig:
    """VGG-16 with batch norm for 32x32 inputs (`dropout` before its last layer), SGD with
    momentum 0.9 and `weight_decay`, batch 128, crop and flip augmentation; a cosine schedule, or
    one-cycle with label smoothing (the recipe that reaches a good accuracy in few epochs).
    The defaults (torchvision's dropout 0.5, weight decay 5e-4) keep the keys of earlier runs."""
    model_kwargs = {"width": width} if dropout == models.VGG_DROPOUT else {"width": width, "dropout": dropout}
    return TrainConfig(
        "vgg16", "cifar10", model_kwargs, {**(data_kwargs or {}), "augment": True}, optimizer="sgd",
        lr=lr, momentum=0.9, weight_decay=weight_decay, schedule=schedule, epochs=epochs, batch_size=128,
        seed=seed, label_smoothing=label_smoothing,
    )  # fmt: skip


@torch.no_grad()
def faster_in_tucker(
    model: nn.Module,
    plan: Mapping[str, dict],
    images: torch.Tensor,
    *,
    repeats: int,
) -> tuple[dict[str, dict], pd.DataFrame]:
    """The part of a decomposition `plan` whose layers run faster decomposed, and the timings:
    each planned layer alone, on the input it receives from the batch `images`, against its
    decomposed form, both with the batch norm after them folded in (as deployed), timed in turn
    in one run (`measure.time_layers`). Rows of the table: layer, ms dense, ms decomposed, speedup."""
    report_progress(stage="latency of decomposed layers")
    pair = {
        "dense": fold_batch_norm(model),
        "decomposed": fold_batch_norm(decompose.decompose_model(model, plan)),
    }
    seconds = measure.time_layers(pair, list(plan), images, repeats=repeats, warmup=1)
    table = pd.DataFrame(
        [
            {
                "layer": name,
                "ms dense": 1000 * seconds[name]["dense"],
                "ms decomposed": 1000 * seconds[name]["decomposed"],
            }  # fmt: skip
            for name in plan
        ]
    )
    table["speedup"] = table["ms dense"] / table["ms decomposed"]
    faster = set(table.loc[table["speedup"] > 1, "layer"])
    return {name: spec for name, spec in plan.items() if name in faster}, table


def step_table(
    steps: Mapping[str, nn.Module], accuracy: Mapping[str, float], images: torch.Tensor, *, batch_size: int,
    repeats: int,
) -> pd.DataFrame:  # fmt: skip
    """V-T2 in plain units: `measure_models`' parameters, MFLOPs per image, `test accuracy` (a
    fraction), median `seconds` to classify `images` in batches of `batch_size` in the default
    and the channels-last layout and the speedups over the first model, with the saved file size
    and the parameter ratio to the first model. The models are timed with their batch norms
    folded into the convs, as deployed (`fold_batch_norm`); parameters and file sizes are those
    of the models as trained. The caption says the batch."""
    folded = {name: fold_batch_norm(model) for name, model in steps.items()}
    table = measure_models(folded, accuracy, images, batch_size=batch_size, repeats=repeats)
    table["parameters"] = [models.count_parameters(m) for m in steps.values()]
    table.insert(2, "test accuracy", table.pop("accuracy"))
    table.insert(5, "file size (kB)", [measure.file_size(m) / 1000 for m in steps.values()])
    table.insert(6, "parameters ratio", table["parameters"].iloc[0] / table["parameters"])
    return table


def published_table() -> pd.DataFrame:
    """The published results, with our untrained VGG-16 at full width counted the same way.
    The papers' numbers stay as printed (typed by hand from their tables, accuracy in %, column
    `test accuracy (%)`): a record of what they print, not a result of ours for other code to read."""
    full = models.vgg16(width=1.0)
    mult_adds = measure.flops(full, torch.zeros(1, 3, 32, 32)) / 2e6
    ours = {
        "parameters": models.count_parameters(full),
        "M multiply-adds": mult_adds,
        "test accuracy (%)": float("nan"),
    }
    return pd.concat(
        [published.VGG_CIFAR10, pd.DataFrame({"our VGG-16 at full width (counted, multiply-adds)": ours}).T]
    )


def data_kwargs(val_size: int, train_size: int | None, test_size: int | None, seed: int) -> dict:
    """The data arguments of the chapter's CIFAR-10 splits."""
    data.check_dataset("cifar10")
    return {"val_size": val_size, "train_size": train_size, "test_size": test_size, "seed": seed}


@dataclass
class Reduction:
    """Every step of `reduce_vgg`: the models and their test accuracy (fractions), by step name;
    the plans; with `tucker_layers="faster"`, the layer timings that chose the convs; and the
    keyword arguments every step was fine-tuned with (`fine_tune`'s, the teacher included), for
    any other network to be fine-tuned alike; `origins`: the cache origin of each fine-tuned step's
    starting network, by the name of that untuned step (to fine-tune it again on another budget)."""

    models: dict[str, nn.Module]
    accuracy: dict[str, float]
    plans: dict[str, dict]
    tucker_timing: pd.DataFrame | None = None
    fine_tuning: dict = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, steps: Mapping[str, tuple[nn.Module, float]], plans: dict, timing: pd.DataFrame | None,
        fine_tuning: dict, origins: dict[str, str] | None = None,
    ):  # fmt: skip
        """From (model, accuracy) by step name."""
        models_, accuracy = {k: m for k, (m, _) in steps.items()}, {k: a for k, (_, a) in steps.items()}
        return cls(models_, accuracy, plans, timing, fine_tuning, dict(origins or {}))


def _teacher(
    base: TrainResult,
    tucker_layers: str,
    timing_images: torch.Tensor | None,
    weight: float,
    temperature: float,
) -> train.Distillation | None:
    """The arguments of `reduce_vgg` checked, and its teacher: the original network with batch
    norm folded (the same function, faster), or None without distillation."""
    if tucker_layers not in TUCKER_LAYERS:
        allowed = ", ".join(TUCKER_LAYERS)
        raise ValueError(f"tucker_layers={tucker_layers!r} is not known; allowed values: {allowed}")
    if tucker_layers == "faster" and timing_images is None:
        raise ValueError("tucker_layers='faster' needs timing_images, the batch the layers are timed on")
    train.Distillation(base.model, base.key, weight, temperature).validate()
    if weight <= 0:
        return None
    return train.Distillation(fold_batch_norm(base.model), base.key, weight, temperature)


def reduce_vgg(
    base: TrainResult,
    splits: data.DataSplits,
    test: Iterable,
    rates: Mapping[str, float],
    tucker_rule: str | float,
    fine_tune: FineTune,
    *,
    epochs: int,
    lr: float,
    optimizer: str = "adam",
    label_smoothing: float = 0.0,
    seed: int = 0,
    multiple_of: int = 1,
    tucker_layers: str = "all",
    timing_images: torch.Tensor | None = None,
    timing_repeats: int = 10,
    distill_weight: float = 0.0,
    distill_temperature: float = 4.0,
) -> Reduction:
    """Li et al.'s filter pruning at `rates` (filters kept rounded down to a multiple of
    `multiple_of`), then Tucker-2 of the convs (ranks by `tucker_rule`; with `tucker_layers`
    "faster", only of those whose decomposed form runs faster on `timing_images`,
    `faster_in_tucker`), then of the classifier's hidden layer, each step fine-tuned by
    `fine_tune` (e.g. `cache.fine_tune_cached`, with `optimizer` and `label_smoothing`) on a copy,
    so every step's model is kept as it was made. With `distill_weight` > 0 every step also learns
    the original network's outputs at `distill_temperature` (`train.Distillation`; the teacher
    runs with batch norm folded, the same function, faster)."""
    distill = _teacher(base, tucker_layers, timing_images, distill_weight, distill_temperature)
    report_progress(stage="VGG reduction")
    settings = {"epochs": epochs, "lr": lr, "batch_size": 128, "seed": seed, "optimizer": optimizer,
                "label_smoothing": label_smoothing, "distill": distill}  # fmt: skip

    def tuned(model: nn.Module, origin: dict) -> FineTuned:
        return fine_tune(copy.deepcopy(model), json.dumps(origin, sort_keys=True), splits, **settings)

    pruned = prune_filters(base.model, rates, multiple_of)
    extra = {"multiple_of": multiple_of} if multiple_of != 1 else {}  # earlier runs' keys stay as they were
    pruned_origin = {"model": base.key, "rates": dict(rates), **extra}
    pruned_ft = tuned(pruned, pruned_origin)
    convs, timing = tucker_plan(pruned_ft.model, tucker_rule), None
    if tucker_layers == "faster":
        convs, timing = faster_in_tucker(pruned_ft.model, convs, timing_images, repeats=timing_repeats)
    decomposed = decompose.decompose_model(pruned_ft.model, convs)
    decomposed_ft = tuned(decomposed, {"model": pruned_ft.key, "plan": convs})
    head = classifier_plan(decomposed_ft.model, tucker_rule)
    compact_ft = tuned(
        decompose.decompose_model(decomposed_ft.model, head), {"model": decomposed_ft.key, "plan": head}
    )
    steps = {
        "original": (base.model, base.test["acc"]),
        "filters pruned": (pruned, train.evaluate(pruned, test)["acc"]),
        "filters pruned, fine-tuned": (pruned_ft.model, pruned_ft.test["acc"]),
        "+ Tucker-2 convs": (decomposed, train.evaluate(decomposed, test)["acc"]),
        "+ Tucker-2 convs, fine-tuned": (decomposed_ft.model, decomposed_ft.test["acc"]),
        "+ Tucker-2 classifier, fine-tuned": (compact_ft.model, compact_ft.test["acc"]),
    }
    plans = {"rates": dict(rates), "convs": convs, "classifier": head}
    origins = {"filters pruned": json.dumps(pruned_origin, sort_keys=True)}
    return Reduction.of(steps, plans, timing, settings, origins)
