"""The VGG-16 case study chapter (draft 004, chapter 6): a VGG-16 trained on CIFAR-10, reduced by
filter pruning (Li et al. 2017) and Tucker decomposition (Kim et al. 2016), each step fine-tuned.
The pruning rates come from the accuracy each layer loses (Li et al.'s sensitivity), at the
smallest tolerance whose network runs a target speedup faster, measured; Tucker-2 goes to every
conv, or to those it makes faster, measured layer by layer.

Chapter glue between `prune` / `decompose` (pure algorithms) and the notebook.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, models, published, train
from netshrink.cache import SGD_FINE_TUNING_WORDS, FineTuned, TrainResult
from netshrink.compress import decompose, prune
from netshrink.compress.fold import fold_batch_norm
from netshrink.compress.graph import prunable_convs
from netshrink.compress.sensitivity import filter_sensitivity
from netshrink.experiments.tensor_decomposition import FineTune, compare_models
from netshrink.findings import Findings, compression_rows
from netshrink.progress import update as report_progress
from netshrink.train import TrainConfig

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


def _rates_text(rates: Mapping[str, float]) -> str:
    """Rates as the page and the candidates table print them: '50, 10, 20' (%, layer order)."""
    return ", ".join(f"{100 * r:.0f}" for r in rates.values())


def tolerance_candidates(
    sensitivity: pd.DataFrame, base_acc: float, prune_tol: float, max_rate: float
) -> dict[float, dict[str, float]]:
    """`rates_from_sensitivity` at the tolerances `prune_tol`, 2 `prune_tol`, 3 `prune_tol`, ...
    (points of accuracy) until every layer is at its largest tested rate: each distinct set of
    rates once, under the smallest tolerance that gives it."""
    if not train.finite(prune_tol) or prune_tol <= 0:
        raise ValueError(f"prune_tol={prune_tol!r} is out of range; allowed: a number above 0")
    top = rates_from_sensitivity(sensitivity, base_acc, math.inf, max_rate)
    found: dict[float, dict[str, float]] = {}
    step = 1
    while not found or list(found.values())[-1] != top:
        rates = rates_from_sensitivity(sensitivity, base_acc, step * prune_tol, max_rate)
        if rates not in found.values():
            found[step * prune_tol] = rates
        step += 1
    return found


def rates_for_speedup(
    model: nn.Module,
    sensitivity: pd.DataFrame,
    base_acc: float,
    images: torch.Tensor,
    *,
    prune_tol: float,
    max_rate: float,
    speedup: float,
    multiple_of: int = 1,
    repeats: int = 10,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Pruning rates by accuracy and measured time: those of the smallest tolerance (in steps of
    `prune_tol`, `tolerance_candidates`) whose pruned network (`prune_filters` with `multiple_of`)
    runs at least `speedup` times as fast as `model` on the batch `images` (N, 3, 32, 32), every
    candidate with its batch norms folded (as deployed) and all timed in turn in one run
    (`measure.time_images`, default layout). With `speedup` 1 the rates at `prune_tol`, nothing
    timed. Also a table of the candidates: tolerance, rates (%), parameters, ms, speedup."""
    if not train.finite(speedup) or speedup < 1:
        raise ValueError(f"target_speedup={speedup!r} is out of range; allowed: a number of at least 1")
    if speedup == 1:
        return rates_from_sensitivity(sensitivity, base_acc, prune_tol, max_rate), pd.DataFrame()
    candidates = tolerance_candidates(sensitivity, base_acc, prune_tol, max_rate)
    report_progress(stage="timing the pruning candidates")
    pruned = {tol: prune_filters(model, rates, multiple_of) for tol, rates in candidates.items()}
    named = {f"{tol:g}": fold_batch_norm(m) for tol, m in pruned.items()}
    named["unpruned"] = fold_batch_norm(model)
    seconds = measure.time_images(named, images, batch_size=len(images), repeats=repeats)
    table = pd.DataFrame(
        [
            {
                "tolerance (points)": tol,
                "rates (%)": _rates_text(rates),
                "parameters": models.count_parameters(pruned[tol]),
                "ms per batch": 1000 * seconds[f"{tol:g}"],
                "speedup": seconds["unpruned"] / seconds[f"{tol:g}"],
            }  # fmt: skip
            for tol, rates in candidates.items()
        ]
    )
    fast = table[table["speedup"] >= speedup]
    if fast.empty:
        raise ValueError(
            f"target_speedup={speedup:g} is out of reach: the fastest pruning candidate (every layer at "
            f"up to max_rate={max_rate:g}) measured {table['speedup'].max():.2f}x; allowed: a lower "
            "target_speedup"
        )
    return candidates[float(fast.iloc[0]["tolerance (points)"])], table


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
    in one run (`measure.time_calls`). Rows of the table: layer, ms dense, ms decomposed, speedup."""
    report_progress(stage="latency of decomposed layers")
    dense = fold_batch_norm(model)
    decomposed = fold_batch_norm(decompose.decompose_model(model, plan))
    inputs: dict[str, torch.Tensor] = {}
    hooks = [
        dense.get_submodule(name).register_forward_pre_hook(functools.partial(_keep_input, inputs, name))
        for name in plan
    ]
    try:
        dense(images)
    finally:
        for hook in hooks:
            hook.remove()
    calls = {}
    for name in plan:
        calls[f"{name} dense"] = functools.partial(dense.get_submodule(name), inputs[name])
        calls[f"{name} decomposed"] = functools.partial(decomposed.get_submodule(name), inputs[name])
    seconds, _ = measure.time_calls(calls, repeats=repeats, warmup=1)
    table = pd.DataFrame(
        [
            {
                "layer": name,
                "ms dense": 1000 * seconds[f"{name} dense"],
                "ms decomposed": 1000 * seconds[f"{name} decomposed"],
            }  # fmt: skip
            for name in plan
        ]
    )
    table["speedup"] = table["ms dense"] / table["ms decomposed"]
    faster = set(table.loc[table["speedup"] > 1, "layer"])
    return {name: spec for name, spec in plan.items() if name in faster}, table


def _keep_input(inputs: dict[str, torch.Tensor], name: str, module: nn.Module, args: tuple) -> None:
    inputs[name] = args[0]


def prune_filters(model: nn.Module, rates: Mapping[str, float], multiple_of: int = 1) -> nn.Module:
    """Remove, in each named conv layer in turn, the fraction `rates[layer]` of filters of smallest
    L1 norm (on the weights the earlier removals left, Li et al.'s greedy variant), physically,
    with their batch-norm channels and the next layer's inputs; the filters kept rounded down to
    a multiple of `multiple_of` (`prune.smallest_l1_filters`)."""
    allowed = prunable_convs(model)
    for layer, rate in rates.items():
        if layer not in allowed:
            raise ValueError(
                f"layer={layer!r} is not a conv layer it can follow; allowed values: {', '.join(allowed)}"
            )
        keep = prune.smallest_l1_filters(model.get_submodule(layer), rate, multiple_of)
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
    file size and the parameter ratio to the first model. The models are timed with their batch
    norms folded into the convs, as deployed (`fold_batch_norm`); parameters and file sizes are
    those of the models as trained."""
    folded = {name: fold_batch_norm(model) for name, model in steps.items()}
    table = compare_models(folded, accuracy, images, batch_size=batch_size, repeats=repeats)
    table["parameters"] = [models.count_parameters(m) for m in steps.values()]
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
    """The training recipe in words, e.g. 'weight decay 0.0005, a one-cycle learning-rate schedule
    peaking at 0.1, label smoothing 0.1, dropout 0.5 before the last layer' (and ', under bfloat16
    autocast over float32 weights' when trained so)."""
    schedule = {"cosine": "a cosine learning-rate schedule from", "onecycle": "a one-cycle learning-rate "
                "schedule peaking at", "none": "a constant learning rate of"}[config.schedule]  # fmt: skip
    smoothing = f", label smoothing {config.label_smoothing:g}" if config.label_smoothing else ""
    dropout = config.model_kwargs.get("dropout", models.VGG_DROPOUT)
    dropped = f", dropout {dropout:g} before the last layer" if dropout else ", no dropout"
    autocast = ", under bfloat16 autocast over float32 weights" if config.precision == "bfloat16" else ""
    return f"weight decay {config.weight_decay:g}, {schedule} {config.lr:g}{smoothing}{dropped}{autocast}"


def fine_tuning_recipe(
    optimizer: str,
    lr: float,
    epochs: int,
    label_smoothing: float = 0.0,
    distill_weight: float = 0.0,
    distill_temperature: float = 4.0,
) -> str:
    """The fine-tuning of each step in words, e.g. '6 epochs of SGD (Nesterov momentum 0.9,
    weight decay 5e-4) with a cosine schedule from 0.01 to zero, label smoothing 0.1'; with
    distillation, its weight and temperature too."""
    how = {
        "adam": f"Adam at a constant {lr:g}",
        "sgd": f"SGD ({SGD_FINE_TUNING_WORDS}) with a cosine schedule from {lr:g} to zero",
    }[optimizer]
    smoothing = f", label smoothing {label_smoothing:g}" if label_smoothing else ""
    taught = (
        f", distilled from the original network (Hinton et al. 2015: weight {distill_weight:g} on its "
        f"outputs softened at temperature {distill_temperature:g})"
        if distill_weight
        else ""
    )
    return f"{epochs} epoch{'s' if epochs != 1 else ''} of {how}{smoothing}{taught}"


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
    candidates: pd.DataFrame | None = None,
    target_speedup: float = 1.0,
    channel_multiple: int = 1,
) -> Findings:
    """The numbers and sentences the prose quotes about the chosen pruning rates (`candidates`:
    the table of `rates_for_speedup`, empty or None when nothing was timed) and the rank rule."""
    vbmf_max = max(max(spec["rank"]) for spec in tucker_plan(model, "vbmf").values())
    rule = (
        "VBMF on the unfolded kernels, as Kim et al. do"
        if tucker_rule == "vbmf"
        else f"the fewest singular values of each unfolded kernel that keep {100 * tucker_rule:.0f} % of its "
        f"energy, instead of Kim et al.'s VBMF, which separates signal from noise and here keeps at most "
        f"{vbmf_max} components of any kernel (too few to fine-tune back: with VBMF ranks, an earlier "
        f"`full` run fell to chance before fine-tuning and recovered to 48 % only)"
    )
    tolerance = prune_tol
    pruning = (
        f"Each layer is then pruned at the largest tested rate that keeps the validation accuracy within "
        f"{prune_tol:g} points of the unpruned network's (at most {max_rate:g})"
    )
    if candidates is not None and len(candidates):
        chosen = candidates[candidates["rates (%)"] == _rates_text(rates)]
        tolerance, speedup = float(chosen.iloc[0]["tolerance (points)"]), float(chosen.iloc[0]["speedup"])
        pruning = (
            f"Each layer is then pruned at the largest tested rate that keeps the validation accuracy "
            f"within a tolerance of the unpruned network's (at most {max_rate:g}), the tolerance rising in "
            f"steps of {prune_tol:g} points until the pruned network, timed beside the unpruned one, runs "
            f"at least {target_speedup:g} times as fast (the table below): at {tolerance:g} points it "
            f"measured {speedup:.2f} times"
        )
    if channel_multiple > 1:
        pruning += (
            f", with the filters kept in each layer rounded down to a multiple of {channel_multiple} (the "
            f"floats an AVX2 register holds: oneDNN's blocked kernels then run without padding, and a "
            f"convolution with a few channels fewer but a multiple of {channel_multiple} can run twice as "
            f"fast)"
        )
    return Findings(
        {
            "prune_tol": tolerance,
            "rank_rule": rule,
            "max_rate": max_rate,
            "pruning_rule": pruning,
            "rates": _rates_text(rates),
            "n_spared": sum(r == 0 for r in rates.values()),
        }
    )


@dataclass
class Reduction:
    """Every step of `reduce_vgg`: the models and their test accuracy (fractions), by step name;
    the plans; and, with `tucker_layers="faster"`, the layer timings that chose the convs."""

    models: dict[str, nn.Module]
    accuracy: dict[str, float]
    plans: dict[str, dict]
    tucker_timing: pd.DataFrame | None = None


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
    if tucker_layers not in TUCKER_LAYERS:
        allowed = ", ".join(TUCKER_LAYERS)
        raise ValueError(f"tucker_layers={tucker_layers!r} is not known; allowed values: {allowed}")
    if tucker_layers == "faster" and timing_images is None:
        raise ValueError("tucker_layers='faster' needs timing_images, the batch the layers are timed on")
    train.Distillation(base.model, base.key, distill_weight, distill_temperature).validate()
    report_progress(stage="VGG reduction")
    distill = None
    if distill_weight > 0:  # the teacher runs folded: the same function, faster
        teacher = fold_batch_norm(base.model)
        distill = train.Distillation(teacher, base.key, distill_weight, distill_temperature)

    def tuned(model: nn.Module, origin: dict) -> FineTuned:
        origin_text = json.dumps(origin, sort_keys=True)
        return fine_tune(
            copy.deepcopy(model), origin_text, splits, epochs=epochs, lr=lr, batch_size=128, seed=seed,
            optimizer=optimizer, label_smoothing=label_smoothing, distill=distill,
        )  # fmt: skip

    pruned = prune_filters(base.model, rates, multiple_of)
    made = {"model": base.key, "rates": dict(rates)}
    if multiple_of != 1:  # the keys of earlier runs stay as they were
        made["multiple_of"] = multiple_of
    pruned_ft = tuned(pruned, made)
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
    return Reduction(
        {k: m for k, (m, _) in steps.items()},
        {k: a for k, (_, a) in steps.items()},
        {"rates": dict(rates), "convs": convs, "classifier": head},
        timing,
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


def tucker_findings(reduction: Reduction) -> Findings:
    """The prose's words about which convolutions Tucker-2 replaced."""
    convs, timing = reduction.plans["convs"], reduction.tucker_timing
    if timing is None:
        text = "every convolution but the first (three input channels)"
    elif not convs:
        text = f"none of the {len(timing)} convolutions after the first: none runs faster decomposed"
    else:
        which = "the one" if len(convs) == 1 else f"the {len(convs)}"
        verb = "runs" if len(convs) == 1 else "run"
        text = (
            f"{which} of the {len(timing)} convolutions after the first that {verb} faster decomposed, each "
            f"timed alone on its input beside its decomposed form (the table below)"
        )
    return Findings({"tucker_convs": text, "n_tucker": len(convs)})
