"""The Tensor decomposition chapter's CIFAR-10 part (the course report, 003): magnitude pruning
of one layer at a time, Tucker-2 reconstruction error, Tucker-2 of every conv at ranks k/8
(`k_sweep`) and five decompositions at matched parameter budgets (`methods_at_budget`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from netshrink import data, models, published, train
from netshrink.cache import TrainResult
from netshrink.compress import decompose, prune
from netshrink.compress.conv import tucker2_error
from netshrink.compress.plans import budget_plan, k_plan
from netshrink.experiments.tensor_decomposition import (
    FineTune,
    describe_plan,
    measure_models,
    model_table,
    origin,
)
from netshrink.findings import Findings, compression_rows
from netshrink.progress import update as report_progress
from netshrink.train import TrainConfig


def cifar_config(
    *, epochs: int, seed: int = 0, augment: bool = True, data_kwargs: dict | None = None
) -> TrainConfig:
    """The book's CIFAR-10 CNN with max-pooling (conv 32, 32, 64, 64 + dense 512; draft 003 names
    no layers), Adam 1e-3, batch 64, crop and flip augmentation: Baselines' B-F7 configuration."""
    return TrainConfig(
        "cifar_cnn",
        "cifar10",
        {"pool": True},
        {**(data_kwargs or {}), "augment": augment},
        optimizer="adam",
        lr=1e-3,
        epochs=epochs,
        batch_size=64,
        seed=seed,
    )


def magnitude_sweep(
    model: nn.Module, loader: Iterable, layers: Sequence[str], rates: Sequence[float]
) -> pd.DataFrame:
    """D-F8: test accuracy (a fraction) with the fraction `rate` of one layer's smallest weights
    zeroed, no retraining; one row per (layer, rate)."""
    report_progress(stage="magnitude pruning sweep")
    rows = []
    for layer in layers:
        for rate in rates:
            acc = train.evaluate(prune.magnitude_prune(model, layer, rate), loader)["acc"]
            rows.append({"layer": layer, "rate": rate, "test accuracy": acc})
    return pd.DataFrame(rows)


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


# ------------------------------------------------------------------ methods at matched budgets


def layers_parameters(model: nn.Module, names: Iterable[str]) -> int:
    """Parameters of the named submodules of `model` (the layers a plan replaces)."""
    return sum(models.count_parameters(model.get_submodule(name)) for name in names)


def sweep_findings(sweep: pd.DataFrame, layers: Sequence[str]) -> Findings:
    """D-F8's numbers for the prose: accuracy (%) with half the weights of the first conv, the
    last conv and the dense layer zeroed (NaN where 0.5 is not a swept rate), from
    `magnitude_sweep` (fractions)."""
    at_half = 100 * sweep[sweep["rate"] == 0.5].set_index("layer")["test accuracy"]
    return Findings(
        {
            "prune_first": at_half.get(layers[0], math.nan),
            "prune_last": at_half.get(layers[-1], math.nan),
            "prune_fc": at_half.get("fc", math.nan),
        }
    )


def reconstruction_findings(curves: pd.DataFrame, ranks: Sequence[int]) -> Findings:
    """D-F9's numbers for the prose: both curves' errors at the middle rank of `ranks`."""
    rank = ranks[len(ranks) // 2]
    rows = curves[curves["rank"] == rank]
    at = rows.set_index(rows["varied"].str[:2])["relative error"]
    return Findings(
        {"recon_rank": rank, "recon_r1": at.get("R1", math.nan), "recon_r2": at.get("R2", math.nan)}
    )


@dataclass
class KSweep:
    """D-T6 and D-F10: the table (one row per model, `model_table`'s plain units) and the long
    frame the figure draws (k, quantity, value; all fractions: `test accuracy`, and
    `time / original` in either layout)."""

    table: pd.DataFrame
    plot: pd.DataFrame
    k_ref: int
    findings: Findings


def k_sweep(
    cnn: TrainResult,
    splits: data.DataSplits,
    test: Iterable,
    ks: Sequence[int],
    layers: Sequence[str],
    fine_tune: FineTune,
    *,
    epochs: int,
    images: torch.Tensor,
    batch_size: int,
    repeats: int,
    seed: int = 0,
) -> KSweep:
    """Tucker-2 of every conv in `layers` at ranks k/8 for each k, evaluated without fine-tuning,
    and at k = 4 (or the middle k) also after `epochs` of fine-tuning at lr 1e-4; all timed side
    by side on `images`. The draft's 88.02 % at k = 4 (no fine-tuning mentioned) is set beside our
    k = 4 before fine-tuning, and beside the fine-tuned one."""
    report_progress(stage="decomposition for each k")
    k_ref = 4 if 4 in ks else ks[len(ks) // 2]
    named, accuracy = {"original": cnn.model}, {"original": cnn.test["acc"]}
    for k in ks:
        named[f"k = {k}"] = decompose.decompose_model(cnn.model, k_plan(cnn.model, k, layers))
        accuracy[f"k = {k}"] = train.evaluate(named[f"k = {k}"], test)["acc"]
    plan = k_plan(cnn.model, k_ref, layers)
    tuned = fine_tune(
        decompose.decompose_model(cnn.model, plan),
        origin(cnn, plan),
        splits,
        epochs=epochs,
        lr=1e-4,
        seed=seed,
    )
    named[f"k = {k_ref}, fine-tuned"], accuracy[f"k = {k_ref}, fine-tuned"] = tuned.model, tuned.test["acc"]
    measured = measure_models(named, accuracy, images, batch_size=batch_size, repeats=repeats)
    table = model_table(measured)
    return KSweep(table, _k_plot(table, ks), k_ref, _k_findings(measured, k_ref, splits.label))


def _k_plot(table: pd.DataFrame, ks: Sequence[int]) -> pd.DataFrame:
    """D-F10's long frame from `model_table`'s: per k, the test accuracy and the time over the
    original's in either layout (the reciprocal of the speedup), all fractions."""
    rows = table.loc[[f"k = {k}" for k in ks]]
    wide = pd.DataFrame(
        {
            "k": list(ks),
            "test accuracy": rows["test accuracy"].to_numpy(),
            "time / original": 1 / rows["speedup"].to_numpy(),
            "time / original, channels last": 1 / rows["speedup, channels last"].to_numpy(),
        }
    )
    return wide.melt(id_vars="k", var_name="quantity")


def _k_findings(measured: pd.DataFrame, k_ref: int, data_set: str) -> Findings:
    """D-T6's numbers for the prose (in %), beside the report's (fractions) and as a compression
    record, from `measure_models`' table (accuracy as a fraction, seconds)."""
    ref, ref_ft, orig = (
        measured.loc[f"k = {k_ref}"],
        measured.loc[f"k = {k_ref}, fine-tuned"],
        measured.loc["original"],
    )
    glue = {
        "k_ref": k_ref,
        "k_acc": 100 * ref["accuracy"],
        "k_acc_ft": 100 * ref_ft["accuracy"],
        "k_time": 100 * ref["seconds"] / orig["seconds"],
        "k_time_cl": 100 / ref["speedup, channels last"],
        "k_params": 100 * ref["parameters"] / orig["parameters"],
        "k_flops": 100 * ref["MFLOPs per image"] / orig["MFLOPs per image"],
    }
    draft, source = published.CIFAR_K_TEXT, "003 (Figure 8 and text)"
    compare = [
        {
            "item": "D-T6",
            "quantity": f"CIFAR-10 CNN: test accuracy at k = {k_ref}, no fine-tuning",
            "ours": ref["accuracy"],
            "draft": draft["k4_acc"],
            "source": source,
        },
        {
            "item": "D-T6",
            "quantity": f"CIFAR-10 CNN: test accuracy at k = {k_ref}, fine-tuned (the draft: none said)",
            "ours": ref_ft["accuracy"],
            "draft": draft["k4_acc"],
            "source": source,
        },
        {
            "item": "D-T6",
            "quantity": f"CIFAR-10 CNN: forward time at k = {k_ref} / original",
            "ours": ref["seconds"] / orig["seconds"],
            "draft": draft["k4_time_fraction"],
            "source": "003 (Figure 8)",
        },
    ]
    compressions = compression_rows(
        "D-T6",
        measured,
        data_set=data_set,
        rows=[f"k = {k_ref}, fine-tuned"],
        model=f"CIFAR CNN, Tucker-2 k = {k_ref}, fine-tuned",
        how=f"Tucker-2 of every conv, ranks {k_ref}/8, fine-tuned",
        accuracy="accuracy",
    )
    return Findings(glue, compare, compressions)


def methods_at_budget(
    cnn: TrainResult,
    splits: data.DataSplits,
    methods: Sequence[str],
    layers: Sequence[str],
    fraction: float,
    fine_tune: FineTune,
    *,
    n_blocks: int,
    epochs: int,
    images: torch.Tensor,
    batch_size: int,
    repeats: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, Findings]:
    """D-T7: each method of `methods` on every conv of `layers` at the largest ranks within
    `fraction` of each layer's parameters, fine-tuned `epochs` at lr 1e-4, all timed side by side;
    accuracies before and after fine-tuning as fractions, `seconds` for `attrs["images"]` images."""
    report_progress(stage="methods at matched budgets")
    plans = {m: budget_plan(cnn.model, m, layers, fraction, n_blocks=n_blocks) for m in methods}
    tuned = {
        m: fine_tune(
            decompose.decompose_model(cnn.model, p), origin(cnn, p), splits, epochs=epochs, lr=1e-4, seed=seed
        )
        for m, p in plans.items()
    }
    named = {"original": cnn.model, **{m: t.model for m, t in tuned.items()}}
    accuracy = {"original": cnn.test["acc"], **{m: t.test["acc"] for m, t in tuned.items()}}
    measured = measure_models(named, accuracy, images, batch_size=batch_size, repeats=repeats)
    table = model_table(measured)
    before = [cnn.test["acc"]] + [t.before["acc"] for t in tuned.values()]
    table.insert(3, "accuracy before fine-tuning", before)
    table.insert(1, "decomposed layers' parameters", [layers_parameters(m, layers) for m in named.values()])
    table["ranks"] = ["dense"] + [describe_plan(p) for p in plans.values()]
    return table, _budget_findings(measured, splits.label, layers, fraction)


def _budget_findings(
    measured: pd.DataFrame, data_set: str, layers: Sequence[str], fraction: float
) -> Findings:
    """D-T7's numbers for the prose and a compression record per method, from `measure_models`'
    table (accuracy as a fraction)."""
    rest = measured.drop(index="original")
    best, fastest = rest["accuracy"].idxmax(), rest["speedup"].idxmax()
    glue = {
        "best_method": best,
        "best_method_acc": 100 * measured.loc[best, "accuracy"],
        "fastest_method": fastest,
        "fastest_speedup": measured.loc[fastest, "speedup"],
        "budget_pct": 100 * fraction,
    }
    for m in ("cp", "jaderberg"):
        if m in rest.index:
            glue |= {
                f"{m}_speedup": measured.loc[m, "speedup"],
                f"{m}_speedup_cl": measured.loc[m, "speedup, channels last"],
            }
    compressions = compression_rows(
        "D-T7",
        measured,
        data_set=data_set,
        how=f"{{row}} of {', '.join(layers)} + fine-tuning",
        model=f"CIFAR CNN, {{row}} at {100 * fraction:.0f} % budget",
        accuracy="accuracy",
    )
    return Findings(glue, compressions=compressions)
