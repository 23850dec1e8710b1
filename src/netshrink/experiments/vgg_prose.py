"""The VGG-16 case study's words: the recipes, and the numbers and sentences its prose quotes
(`Findings`), built from the chapter's results (`vgg_case_study`, which re-exports them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd
from torch import nn

from netshrink import data, models
from netshrink.cache import TrainResult
from netshrink.compress.plans import tucker_plan
from netshrink.findings import Findings, compression_rows
from netshrink.finetune import SGD_FINE_TUNING_WORDS
from netshrink.train import TrainConfig

if TYPE_CHECKING:  # vgg_rates imports this module's rates_text
    from netshrink.experiments.vgg_rates import ChosenRates

__all__ = [
    "base_findings",
    "fine_tuning_recipe",
    "network_name",
    "rates_text",
    "reduction_findings",
    "sensitivity_findings",
    "training_recipe",
    "tucker_findings",
]


def rates_text(rates: Mapping[str, float]) -> str:
    """Rates as the page and the candidates table print them: '50, 10, 20' (%, layer order)."""
    return ", ".join(f"{100 * r:.0f}" for r in rates.values())


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
    chosen: ChosenRates,
    *,
    prune_tol: float,
    max_rate: float,
    tucker_rule: str | float,
    target_speedup: float = 1.0,
    channel_multiple: int = 1,
) -> Findings:
    """The numbers and sentences the prose quotes about the chosen pruning rates (`chosen`: the
    `vgg_rates.ChosenRates` of `rates_for_speedup`, its tolerance and measured speedup carried as
    values) and the rank rule."""
    vbmf_max = max(max(spec["rank"]) for spec in tucker_plan(model, "vbmf").values())
    rule = (
        "VBMF on the unfolded kernels, as Kim et al. do"
        if tucker_rule == "vbmf"
        else f"the fewest singular values of each unfolded kernel that keep {100 * tucker_rule:.0f} % of its "
        f"energy, instead of Kim et al.'s VBMF, which separates signal from noise and here keeps at most "
        f"{vbmf_max} components of any kernel (we read this as too few to fine-tune back, a hypothesis: "
        f"with VBMF ranks, an earlier `full` run, not recorded in this book, fell to chance before "
        f"fine-tuning and recovered to 48 % only)"
    )
    pruning = (
        f"Each layer is then pruned at the largest tested rate that, with that layer pruned alone, keeps "
        f"the validation accuracy within {chosen.tolerance:g} points of the unpruned network's (at most "
        f"{max_rate:g})"
    )
    if chosen.speedup is not None:
        pruning = (
            f"Each layer is then pruned at the largest tested rate that, with that layer pruned alone (as in "
            f"V-F1), keeps the validation accuracy within a tolerance of the unpruned network's (at most "
            f"{max_rate:g}), the tolerance rising in "
            f"steps of {prune_tol:g} points until the pruned network, timed beside the unpruned one, runs "
            f"at least {target_speedup:g} times as fast (the table below): at {chosen.tolerance:g} points it "
            f"measured {chosen.speedup:.2f} times"
        )
    if channel_multiple > 1:
        pruning += (
            f", with the filters kept in each layer rounded down to a multiple of {channel_multiple} (our "
            f"choice: in a one-off timing on an AVX2 machine, not reproduced here, an 8-to-8-channel "
            f"convolution ran twice as fast as a 10-to-10 one; we suspect oneDNN's channel blocking)"
        )
    return Findings(
        {
            "prune_tol": chosen.tolerance,
            "rank_rule": rule,
            "max_rate": max_rate,
            "pruning_rule": pruning,
            "rates": rates_text(chosen.rates),
            "n_spared": sum(r == 0 for r in chosen.rates.values()),
        }
    )


def reduction_findings(
    table: pd.DataFrame, *, network: str, data_set: str, tucker_rule: str | float
) -> Findings:
    """The prose's numbers about the reduction (`table`: `step_table` of a `Reduction`, its test
    accuracy a fraction; the glue in %, as the prose quotes it) and a compression record for each
    fine-tuned step."""
    first, last = table.iloc[0], table.iloc[-1]
    pruned, tucker = table.loc["filters pruned, fine-tuned"], "+ Tucker-2 convs"
    percent = 100 * table["test accuracy"]  # the prose quotes accuracies in %
    glue = {
        "final_ratio": last["parameters ratio"],
        "final_speedup": last["speedup"],
        "final_speedup_cl": last["speedup, channels last"],
        "final_acc": percent.iloc[-1],
        "final_drop": percent.iloc[0] - percent.iloc[-1],
        "final_size": last["file size (kB)"],
        "base_size": first["file size (kB)"],
        "pruned_ratio": pruned["parameters ratio"],
        "pruned_acc": percent["filters pruned, fine-tuned"],
        "pruned_speedup": pruned["speedup"],
        "tucker_before": percent[tucker],
        "tucker_after": percent[f"{tucker}, fine-tuned"],
    }
    rows = [r for r in table.index if "fine-tuned" in r]
    how = f"L1 filter pruning by sensitivity, then Tucker-2 (ranks: {tucker_rule}), each fine-tuned"
    return Findings(
        glue,
        compressions=compression_rows(
            "V-T2",
            table,
            data_set=data_set,
            rows=rows,
            model=f"{network}, {{row}}",
            how=how,
            accuracy="test accuracy",
        ),
    )


def tucker_findings(reduction) -> Findings:
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
