"""The VGG-16 case study chapter (draft 004, chapter 6): a VGG-16 trained on CIFAR-10, reduced by
filter pruning (Li et al. 2017) and Tucker decomposition (Kim et al. 2016), each step fine-tuned.

Chapter glue between `prune` / `decompose` (pure algorithms) and the notebook.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, models, published, train
from netshrink.cache import SGD_FINE_TUNING_WORDS, FineTuned, TrainResult
from netshrink.compress import decompose, prune
from netshrink.compress.graph import prunable_convs
from netshrink.compress.sensitivity import filter_sensitivity
from netshrink.experiments.tensor_decomposition import FineTune, compare_models
from netshrink.findings import Findings, compression_rows
from netshrink.progress import update as report_progress
from netshrink.train import TrainConfig


def vgg_config(
    *,
    width: float,
    epochs: int,
    lr: float = 0.05,
    seed: int = 0,
    data_kwargs: dict | None = None,
    schedule: str = "cosine",
    label_smoothing: float = 0.0,
) -> TrainConfig:
    """VGG-16 with batch norm for 32x32 inputs, SGD with momentum 0.9 and weight decay 5e-4,
    batch 128, crop and flip augmentation; a cosine schedule, or one-cycle with label smoothing
    (the recipe that reaches a good accuracy in few epochs)."""
    return TrainConfig(
        "vgg16", "cifar10", {"width": width}, {**(data_kwargs or {}), "augment": True}, optimizer="sgd",
        lr=lr, momentum=0.9, weight_decay=5e-4, schedule=schedule, epochs=epochs, batch_size=128, seed=seed,
        label_smoothing=label_smoothing,
    )  # fmt: skip


@torch.no_grad()
def sensitivity(
    model: nn.Module, loader: Iterable, layers: Sequence[str], rates: Sequence[float]
) -> pd.DataFrame:
    """V-F1: test accuracy with the fraction `rate` of one conv layer's filters of smallest L1
    norm removed, no retraining (Li et al. 2017, Figure 2b; `compress.sensitivity`, which follows
    any traceable model). One row per (layer, rate)."""
    report_progress(stage="filter-pruning sensitivity")
    found = filter_sensitivity(model, loader, layers, rates)
    return pd.DataFrame(
        [
            {
                "layer": layer,
                "rate": rate,
                "filters left": int(found.filters_left[i, j]),
                "accuracy (%)": 100 * float(found.accuracy[i, j]),
            }  # fmt: skip
            for i, layer in enumerate(found.layers)
            for j, rate in enumerate(found.rates)
        ]
    )


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
    allowed = prunable_convs(model)
    for layer, rate in rates.items():
        if layer not in allowed:
            raise ValueError(
                f"layer={layer!r} is not a conv layer it can follow; allowed values: {', '.join(allowed)}"
            )
        keep = prune.smallest_l1_filters(model.get_submodule(layer), rate)
        if not keep.all():
            model = prune.remove_filters(model, layer, keep)
    return model


def tucker_plan(model: nn.Module, rule: str | float = "vbmf", skip_first: bool = True) -> dict[str, list]:
    """Tucker-2 of every conv (but the first, 3 input channels) with ranks by `rule`."""
    layers = models.conv_layers(model)[1 if skip_first else 0 :]
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
    steps: Mapping[str, nn.Module], accuracy: Mapping[str, float], images: torch.Tensor, *, batch_size: int,
    repeats: int,
) -> pd.DataFrame:  # fmt: skip
    """V-T2: `measure.side_by_side` as milliseconds per batch, with the test accuracy, the saved
    file size and the parameter ratio to the first model."""
    table = compare_models(steps, accuracy, images, batch_size=batch_size, repeats=repeats)
    per_batch = 1000 * batch_size / len(images)
    table.insert(3, f"ms per {batch_size} images", table.pop(f"s for {len(images):,} images") * per_batch)
    table.insert(4, "ms, channels last", table.pop("s, channels last") * per_batch)
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
    return pd.concat(
        [published.VGG_CIFAR10, pd.DataFrame({"our VGG-16 at full width (counted, multiply-adds)": ours}).T]
    )


def data_kwargs(val_size: int, train_size: int | None, test_size: int | None, seed: int) -> dict:
    """The data arguments of the chapter's CIFAR-10 splits."""
    data.check_dataset("cifar10")
    return {"val_size": val_size, "train_size": train_size, "test_size": test_size, "seed": seed}


def network_name(width: float) -> str:
    """'VGG-16', or 'VGG-16 at 0.25 of its width'."""
    return "VGG-16" if width == 1 else f"VGG-16 at {width:g} of its width"


def training_recipe(config: TrainConfig) -> str:
    """The training recipe in words, e.g. 'a one-cycle learning-rate schedule peaking at 0.1, label
    smoothing 0.1'."""
    schedule = {"cosine": "a cosine learning-rate schedule from", "onecycle": "a one-cycle learning-rate "
                "schedule peaking at", "none": "a constant learning rate of"}[config.schedule]  # fmt: skip
    smoothing = f", label smoothing {config.label_smoothing:g}" if config.label_smoothing else ""
    return f"{schedule} {config.lr:g}{smoothing}"


def fine_tuning_recipe(optimizer: str, lr: float, epochs: int, label_smoothing: float = 0.0) -> str:
    """The fine-tuning of each step in words, e.g. '6 epochs of SGD (Nesterov momentum 0.9,
    weight decay 5e-4) with a cosine schedule from 0.01 to zero, label smoothing 0.1'."""
    how = {
        "adam": f"Adam at a constant {lr:g}",
        "sgd": f"SGD ({SGD_FINE_TUNING_WORDS}) with a cosine schedule from {lr:g} to zero",
    }[optimizer]
    smoothing = f", label smoothing {label_smoothing:g}" if label_smoothing else ""
    return f"{epochs} epoch{'s' if epochs != 1 else ''} of {how}{smoothing}"


def base_findings(
    base: TrainResult, splits: data.DataSplits, table: pd.DataFrame, *, width: float
) -> Findings:
    """The numbers the prose quotes about the trained network (`table`: its `step_table`)."""
    return Findings(
        {
            "network": network_name(width),
            "base_acc": 100 * base.test["acc"],
            "base_params": f"{int(table.iloc[0]['parameters']):,}",
            "train_size": f"{len(splits.train):,}",
            "epochs": base.config.epochs,
            "width_pct": 100 * width,
            "recipe": training_recipe(base.config),
        }
    )


def sensitivity_findings(
    model: nn.Module,
    rates: Mapping[str, float],
    *,
    prune_tol: float,
    max_rate: float,
    tucker_rule: str | float,
) -> Findings:
    """The numbers the prose quotes about the chosen pruning rates and the rank rule."""
    vbmf_max = max(max(spec["rank"]) for spec in tucker_plan(model, "vbmf").values())
    rule = (
        "VBMF on the unfolded kernels, as Kim et al. do"
        if tucker_rule == "vbmf"
        else f"the fewest singular values of each unfolded kernel that keep {100 * tucker_rule:.0f} % of its "
        f"energy, instead of Kim et al.'s VBMF, which separates signal from noise and here keeps at most "
        f"{vbmf_max} components of any kernel (too few to fine-tune back: with VBMF ranks, an earlier "
        f"`full` run fell to chance before fine-tuning and recovered to 48 % only)"
    )
    return Findings(
        {
            "prune_tol": prune_tol,
            "rank_rule": rule,
            "max_rate": max_rate,
            "rates": ", ".join(f"{100 * r:.0f}" for r in rates.values()),
            "n_spared": sum(r == 0 for r in rates.values()),
        }
    )


@dataclass
class Reduction:
    """Every step of `reduce_vgg`: the models and their test accuracy (fractions), by step name."""

    models: dict[str, nn.Module]
    accuracy: dict[str, float]
    plans: dict[str, dict]


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
) -> Reduction:
    """Li et al.'s filter pruning at `rates`, then Tucker-2 of the convs (ranks by `tucker_rule`),
    then of the classifier's hidden layer, each step fine-tuned by `fine_tune` (e.g.
    `cache.fine_tune_cached`, with `optimizer` and `label_smoothing`) on a copy, so every step's
    model is kept as it was made."""
    report_progress(stage="VGG reduction")

    def tuned(model: nn.Module, origin: dict) -> FineTuned:
        origin_text = json.dumps(origin, sort_keys=True)
        return fine_tune(
            copy.deepcopy(model), origin_text, splits, epochs=epochs, lr=lr, batch_size=128, seed=seed,
            optimizer=optimizer, label_smoothing=label_smoothing,
        )  # fmt: skip

    pruned = prune_filters(base.model, rates)
    pruned_ft = tuned(pruned, {"model": base.key, "rates": dict(rates)})
    convs = tucker_plan(pruned_ft.model, tucker_rule)
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
    return Reduction(
        {k: m for k, (m, _) in steps.items()},
        {k: a for k, (_, a) in steps.items()},
        {"rates": dict(rates), "convs": convs, "classifier": head},
    )


def reduction_findings(
    table: pd.DataFrame, *, network: str, data_set: str, tucker_rule: str | float
) -> Findings:
    """The prose's numbers about the reduction (`table`: `step_table` of a `Reduction`) and a
    compression record for each fine-tuned step."""
    first, last = table.iloc[0], table.iloc[-1]
    pruned, tucker = table.loc["filters pruned, fine-tuned"], "+ Tucker-2 convs"
    glue = {
        "final_ratio": last["parameters ratio"],
        "final_speedup": last["speedup"],
        "final_speedup_cl": last["speedup, channels last"],
        "final_acc": last["test accuracy (%)"],
        "final_drop": first["test accuracy (%)"] - last["test accuracy (%)"],
        "final_size": last["file size (kB)"],
        "base_size": first["file size (kB)"],
        "pruned_ratio": pruned["parameters ratio"],
        "pruned_acc": pruned["test accuracy (%)"],
        "pruned_speedup": pruned["speedup"],
        "tucker_before": table.loc[tucker, "test accuracy (%)"],
        "tucker_after": table.loc[f"{tucker}, fine-tuned", "test accuracy (%)"],
    }
    rows = [r for r in table.index if "fine-tuned" in r]
    how = f"L1 filter pruning by sensitivity, then Tucker-2 (ranks: {tucker_rule}), each fine-tuned"
    return Findings(
        glue,
        compressions=compression_rows(
            "V-T2", table, data_set=data_set, rows=rows, model=f"{network}, {{row}}", how=how
        ),
    )
