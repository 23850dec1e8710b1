"""The VGG-16 case study's repeat of the course report's k sweep (V-T4, V-F4): Tucker-2 of every
conv but the first at ranks k/8, no fine-tuning, on a network whose accuracy is near the report's
(about 90 %), so that its drops from its own original can stand beside the report's log.

The Tensor decomposition chapter runs the same sweep on a smaller CNN (D-T6); this one reads
the report's log line by line (`published.CIFAR_K_LOG`), whose index is k.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from netshrink import models, published, train
from netshrink.cache import TrainResult
from netshrink.compress import decompose
from netshrink.compress.fold import fold_batch_norm
from netshrink.compress.plans import k_plan
from netshrink.experiments.tensor_decomposition import measure_models, model_table
from netshrink.findings import Findings
from netshrink.progress import update as report_progress

__all__ = ["KDrops", "k_drops", "k_drops_findings"]

_LOG_BASE = published.CIFAR_K_LOG[8][0]  # the report's k = 8 (full rank): its network's own accuracy
_SOURCE = "003 (Figure 8, its log)"


@dataclass
class KDrops:
    """V-T4 (one row per network: `original`, then `k = 1`.. ; `model_table`'s plain units, with
    `accuracy lost` from our original and the report's accuracy and accuracy lost from its log at
    the same k, all fractions) and V-F4's long frame (k, network, accuracy lost)."""

    table: pd.DataFrame
    plot: pd.DataFrame


def k_drops(
    base: TrainResult,
    test: Iterable,
    ks: Sequence[int],
    *,
    images: torch.Tensor,
    batch_size: int,
    repeats: int,
) -> KDrops:
    """Tucker-2 of every conv of `base.model` but the first, ranks k/8 of its input and output
    channels, for each k in `ks`, evaluated on `test` without fine-tuning, and all timed side by
    side with the original on `images` in batches of `batch_size` (batch norm folded, as deployed;
    `repeats` repeats); beside each k, the report's log at the same k."""
    if not ks or any(k not in published.CIFAR_K_LOG for k in ks):
        raise ValueError(f"ks={list(ks)!r}: each k must be one of the report's, 1..8")
    report_progress(stage="the report's k sweep on the VGG-16 base")
    layers = models.conv_layers(base.model)[1:]
    named, accuracy = {"original": base.model}, {"original": base.test["acc"]}
    for k in ks:
        named[f"k = {k}"] = decompose.decompose_model(base.model, k_plan(base.model, k, layers))
        accuracy[f"k = {k}"] = train.evaluate(named[f"k = {k}"], test)["acc"]
    folded = {name: fold_batch_norm(model) for name, model in named.items()}
    table = model_table(measure_models(folded, accuracy, images, batch_size=batch_size, repeats=repeats))
    table["parameters"] = [models.count_parameters(m) for m in named.values()]
    table["accuracy lost"] = base.test["acc"] - table["test accuracy"]
    log = {"original": _LOG_BASE, **{f"k = {k}": published.CIFAR_K_LOG[k][0] for k in ks}}
    table["report's test accuracy"] = pd.Series(log)
    table["report's accuracy lost"] = _LOG_BASE - table["report's test accuracy"]
    rows = table.drop(index="original")
    plot = pd.concat(
        [
            pd.DataFrame({"k": list(ks), "network": network, "accuracy lost": rows[column].to_numpy()})
            for network, column in (("ours (VGG-16 base)", "accuracy lost"),
                                    ("the report's (its log)", "report's accuracy lost"))
        ],
        ignore_index=True,
    )  # fmt: skip
    return KDrops(table, plot)


def _sentence(table: pd.DataFrame) -> str:
    """Where our drop lies below, beside or above the report's, k by k (points, one run each)."""
    rows = table.drop(index="original")
    gap = 100 * (rows["accuracy lost"] - rows["report's accuracy lost"])
    ks = [int(str(name).split("= ")[1]) for name in rows.index]
    less = [k for k, g in zip(ks, gap, strict=True) if g < -0.5]
    more = [k for k, g in zip(ks, gap, strict=True) if g > 0.5]
    alike = [k for k, g in zip(ks, gap, strict=True) if abs(g) <= 0.5]
    parts = [f"{what} at k = {', '.join(map(str, group))}" for what, group in
             (("less", less), ("more", more), ("within half a point", alike)) if group]  # fmt: skip
    return (f"Against the report's log, the VGG-16 base loses {'; '.join(parts)} (untuned against untuned, "
            "one run each, so neither spread is known: half a point either way is our threshold for no "
            "difference, not a measured one).")  # fmt: skip


def k_drops_findings(drops: KDrops, k_ref: int = 4) -> Findings:
    """V-T4's numbers for the prose (in %) and the comparison at `k_ref` (the report's text names
    k = 4; else the middle k run): our accuracy lost without fine-tuning against the report's log
    at the same k."""
    table = drops.table
    if f"k = {k_ref}" not in table.index:  # a run without k = 4: its middle k
        k_ref = int(str(table.index[1 + (len(table) - 1) // 2]).split("= ")[1])
    ref = table.loc[f"k = {k_ref}"]
    glue = {
        "vgg_k_ref": k_ref,
        "vgg_k_acc": 100 * float(ref["test accuracy"]),
        "vgg_k_lost": 100 * float(ref["accuracy lost"]),
        "vgg_k_report_lost": 100 * float(ref["report's accuracy lost"]),
        "vgg_k_time": 100 / float(ref["speedup"]),
        "vgg_k_sentence": _sentence(table),
    }
    compare = [
        {
            "item": "V-T4",
            "quantity": f"VGG-16 base: accuracy lost at k = {k_ref} from its own original, no fine-tuning",
            "ours": float(ref["accuracy lost"]),
            "draft": float(ref["report's accuracy lost"]),
            "source": _SOURCE,
        }
    ]
    return Findings(glue, compare)
