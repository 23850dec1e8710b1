"""The Tensor decomposition chapter's week-6 network (draft 002): decomposed by plans, fine-tuned
and timed beside the original, and what the other parts of the chapter share (`origin`,
`measure_models` and its book form `model_table`, `compare_models`, `describe_plan`). The input
images: `input_decomposition`; CIFAR-10 (draft 003) and the methods at matched budgets:
`cifar_decomposition`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, published
from netshrink.cache import FineTuned, TrainResult
from netshrink.compress import decompose
from netshrink.findings import Findings, compression_rows, seed_spread
from netshrink.progress import update as report_progress
from netshrink.train import TrainConfig

# ------------------------------------------------------------------ the week-6 network


def lenet_config(*, epochs: int, seed: int = 0, data_kwargs: dict | None = None) -> TrainConfig:
    """Draft 002's `Net` on MNIST with Adam 1e-3, batch 64."""
    return TrainConfig("lenet", "mnist", {}, dict(data_kwargs or {}), optimizer="adam", lr=1e-3,
                       epochs=epochs, batch_size=64, seed=seed)  # fmt: skip


def origin(base: TrainResult, plan: Mapping[str, Any]) -> str:
    """What made a decomposed model: the trained model's cache key and the plan."""
    return json.dumps({"model": base.key, "plan": plan}, sort_keys=True)


def measure_models(
    named: Mapping[str, nn.Module],
    accuracy: Mapping[str, float],
    images: torch.Tensor,
    *,
    batch_size: int,
    repeats: int,
) -> pd.DataFrame:
    """`measure.side_by_side` (parameters, MFLOPs per image, median seconds to classify all of
    `images` in batches in the default and the channels-last layout, speedups over the first
    model) with each model's test `accuracy` (a fraction): plain units, stable column names; the
    number of images timed in `table.attrs["images"]`."""
    table = measure.side_by_side(named, images, batch_size, repeats)
    table.insert(2, "accuracy", [accuracy[k] for k in named])
    table.attrs["images"] = len(images)
    return table


def model_table(measured: pd.DataFrame) -> pd.DataFrame:
    """`measure_models`' table under the book's names: its `accuracy` as `test accuracy` (a
    fraction, which `tables.readable` shows in percent); seconds, speedups and `attrs` as measured
    (the number of images timed is in `attrs["images"]` and the caption, not in a column name)."""
    table = measured.rename(columns={"accuracy": "test accuracy"})
    table.attrs = dict(measured.attrs)
    return table


def compare_models(
    named: Mapping[str, nn.Module],
    accuracy: Mapping[str, float],
    images: torch.Tensor,
    *,
    batch_size: int,
    repeats: int,
) -> pd.DataFrame:
    """`model_table` of `measure_models`: parameters, MFLOPs per image, test accuracy (a fraction)
    and the median seconds to classify all of `images` in batches, in the default and the
    channels-last layout; `speedup` is over the first model."""
    measured = measure_models(named, accuracy, images, batch_size=batch_size, repeats=repeats)
    return model_table(measured)


def describe_plan(plan: Mapping[str, Any]) -> str:
    """'conv2: tucker2 [8, 8]; l1: ...' for tables."""
    parts = []
    for name, spec in decompose.normalise_plan(plan).items():
        extra = f" x{spec['n_blocks']} blocks" if "n_blocks" in spec else ""
        parts.append(f"{name}: {spec['method']} {spec['rank']}{extra}")
    return "; ".join(parts)


FineTune = Callable[
    ..., FineTuned
]  # cache.fine_tune_cached's shape: (model, origin, splits, *, epochs, lr, ...)


@dataclass
class Decomposed:
    """Models decomposed by plans and fine-tuned: by name, the resolved plan and the result."""

    plans: dict[str, dict[str, Any]]
    tuned: dict[str, FineTuned]


def decompose_and_fine_tune(
    base: TrainResult,
    splits: data.DataSplits,
    plans: Mapping[str, Mapping[str, Any]],
    fine_tune: FineTune,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
) -> Decomposed:
    """Each plan (rank rules resolved on `base.model`) applied to a copy of `base.model` and
    fine-tuned by `fine_tune` (e.g. `cache.fine_tune_cached`)."""
    report_progress(stage="decomposition and fine-tuning")
    resolved = {name: decompose.resolve_plan(base.model, plan) for name, plan in plans.items()}
    tuned = {
        name: fine_tune(
            decompose.decompose_model(base.model, plan),
            origin(base, plan),
            splits,
            epochs=epochs,
            lr=lr,
            seed=seed,
        )
        for name, plan in resolved.items()
    }
    return Decomposed(resolved, tuned)


def fine_tuned_table(
    base: TrainResult, decomposed: Decomposed, images: torch.Tensor, *, batch_size: int, repeats: int
) -> pd.DataFrame:
    """`compare_models` of the original and every fine-tuned model, with the accuracy before
    fine-tuning beside the accuracy after, both fractions (rows: 'original', '<plan>, fine-tuned')."""
    named = {"original": base.model, **{f"{k}, fine-tuned": v.model for k, v in decomposed.tuned.items()}}
    accuracy = {
        "original": base.test["acc"],
        **{f"{k}, fine-tuned": v.test["acc"] for k, v in decomposed.tuned.items()},
    }
    table = compare_models(named, accuracy, images, batch_size=batch_size, repeats=repeats)
    before = [base.test["acc"]] + [v.before["acc"] for v in decomposed.tuned.values()]
    table.insert(3, "accuracy before fine-tuning", before)
    return table


def _over_seeds(summary: pd.DataFrame | None) -> tuple[dict, dict]:
    """From `lenet_seeds.seed_summary` (None: one seed): glue (means in %) and, for the draft's
    plan, the mean accuracy with the 95 % range of one more seed's network as its spread."""
    if summary is None:
        return {}, {}
    names = {"original": "lenet_acc_mean", "our plan, fine-tuned": "lenet_ours_acc_mean",
             "draft's plan, fine-tuned": "lenet_draft_acc_mean"}  # fmt: skip
    glue = {"lenet_seeds": int(summary["seeds"].iloc[0])}
    glue |= {name: 100 * float(summary.loc[row, "test accuracy"]) for row, name in names.items()}
    row = summary.loc["draft's plan, fine-tuned"]
    spread = seed_spread(row["accuracy range low"], row["accuracy range high"], int(row["seeds"]), "network")
    return glue, {"ours": float(row["test accuracy"]), **spread}


def lenet_findings(
    table: pd.DataFrame, decomposed: Decomposed, data_set: str, over_seeds: pd.DataFrame | None = None
) -> Findings:
    """D-T5's numbers for the prose (accuracies in %, seconds), the draft's three numbers beside the
    row of the draft's own plan, a compression record per plan, from `fine_tuned_table`; with
    `over_seeds` (`lenet_seeds.seed_summary`) the accuracy beside the draft's is the seeds' mean."""
    orig, ours, theirs = (
        table.loc[r] for r in ("original", "our plan, fine-tuned", "draft's plan, fine-tuned")
    )
    glue = {
        "lenet_acc": 100 * orig["test accuracy"],
        "lenet_ours_acc": 100 * ours["test accuracy"],
        "lenet_ours_before": 100 * ours["accuracy before fine-tuning"],
        "lenet_ours_params": f"{int(ours['parameters']):,}",
        "lenet_ratio": orig["parameters"] / ours["parameters"],
        "lenet_flops_ratio": orig["MFLOPs per image"] / ours["MFLOPs per image"],
        "lenet_speedup": ours["speedup"],
        "lenet_speedup_cl": ours["speedup, channels last"],
        "lenet_orig_s": orig["seconds"],
        "lenet_ours_s": ours["seconds"],
        "lenet_draft_acc": 100 * theirs["test accuracy"],
        "lenet_draft_params": f"{int(theirs['parameters']):,}",
        "lenet_draft_speedup": theirs["speedup"],
        "lenet_draft_speedup_cl": theirs["speedup, channels last"],
        "vbmf_ranks": str(decomposed.plans["our plan"]["conv2"]["rank"]),
    }
    seed_glue, seed_compare = _over_seeds(over_seeds)
    glue |= seed_glue
    draft, source = published.LENET, "002 (week 6)"
    compare = [
        {
            "item": "D-T5",
            "quantity": "week-6 network, the draft's plan: parameters",
            "ours": theirs["parameters"],
            "draft": draft["parameters"][1],
            "source": source,
        },
        {
            "item": "D-T5",
            "quantity": "week-6 network, the draft's plan: test accuracy after fine-tuning",
            "ours": theirs["test accuracy"],
            "draft": draft["acc"][1],
            "source": source,
            **seed_compare,
        },
        {
            "item": "D-T5",
            "quantity": "week-6 network, the draft's plan: time decomposed / original",
            "ours": theirs["seconds"] / orig["seconds"],
            "draft": draft["seconds"][1] / draft["seconds"][0],
            "source": source,
        },
    ]
    how = {f"{k}, fine-tuned": describe_plan(p) for k, p in decomposed.plans.items()}
    compressions = [
        {**row, "how": f"Tucker decomposition + fine-tuning: {how[row['how']]}"}
        for row in compression_rows("D-T5", table, data_set=data_set, model="week-6 Net, {row}", how="{row}",
                                    accuracy="test accuracy")
    ]  # fmt: skip
    return Findings(glue, compare, compressions)
