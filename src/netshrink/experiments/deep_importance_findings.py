"""The numbers and sentences the deeper node-importance sections quote (`Findings`), from the
tables of `deep_importance` (which re-exports these for the chapter)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from netshrink.cache import TrainResult
from netshrink.findings import Findings, compression_rows

__all__ = ["criteria_findings", "per_class_findings", "rewind_findings", "setting_findings"]


def setting_findings(
    counts: pd.DataFrame, nets: Mapping[str, TrainResult], setting: str, n_nodes: int
) -> Findings:
    """I-F3/I-F4: the share of important nodes at the first and last setting (`counts`:
    `layer_counts`, `n_nodes`: hidden nodes in all), whether it grows, and both accuracies."""
    share = counts["important"].groupby(level="setting", sort=False).sum() / n_nodes
    first, last, key = share.index[0], share.index[-1], setting.split()[0]
    return Findings(
        {
            f"{key}_important_first": 100 * float(share.iloc[0]),
            f"{key}_important_last": 100 * float(share.iloc[-1]),
            f"{key}_first": first,
            f"{key}_last": last,
            f"{key}_direction": "more" if share.iloc[-1] > share.iloc[0] else "fewer",
            f"{key}_acc_first": 100 * float(nets[first].test["acc"]),
            f"{key}_acc_last": 100 * float(nets[last].test["acc"]),
        }
    )


def rewind_findings(rewind: pd.DataFrame) -> Findings:
    """I-T4's first and last round (`rewind`: `rewind_rounds`)."""
    first, last = rewind.iloc[0], rewind.iloc[-1]
    return Findings(
        {
            "rewind_widths": last["widths"],
            "rewind_params": int(last["parameters"]),
            "rewind_params0": int(first["parameters"]),
            "rewind_acc_importance": 100 * float(last["importance init"]),
            "rewind_acc_random": 100 * float(last["random init"]),
            "rewind_acc0": 100 * float(first["importance init"]),
        }
    )


def per_class_findings(per_class: pd.DataFrame) -> Findings:
    """I-F5 at the largest fraction removed: the layer whose pruning hurts most on average, and
    its best and worst class (`per_class`: `class_accuracy_after_pruning`)."""
    fraction = per_class["fraction removed"].max()
    worst = per_class[per_class["fraction removed"] == fraction]
    layer = worst.groupby("layer")["acc"].mean().idxmin()
    acc = worst[worst["layer"] == layer].set_index("class")["acc"]
    return Findings(
        {
            "f5_fraction": 100 * fraction,
            "f5_layer": layer,
            "f5_best_class": acc.idxmax(),
            "f5_best_acc": 100 * float(acc.max()),
            "f5_worst_class": acc.idxmin(),
            "f5_worst_acc": 100 * float(acc.min()),
        }
    )


def criteria_findings(criteria: pd.DataFrame, label: str) -> Findings:
    """I-T5: the largest drop of one class under each criterion, in how many layers the per-class
    criterion keeps more channels, the best speedup, and a compression record per pruned model
    (`criteria`: `class_criteria`)."""
    rows = criteria.drop(index="(none)", level="layer")
    overall = rows.xs("overall loss", level="criterion")
    per_class = rows.xs("every class's loss", level="criterion")
    left = rows["channels left"].str.split(" of ").str[0].astype(int)
    more = left.xs("every class's loss", level="criterion") > left.xs("overall loss", level="criterion")
    glue = {
        "t5_drop_overall": 100 * float(overall["largest class drop"].max()),
        "t5_drop_class": 100 * float(per_class["largest class drop"].max()),
        "t5_more_layers": int(more.sum()),
        "t5_layers": len(overall),
        "t5_best_speedup": float(rows["speedup"].max()),
        "t5_best_at": " ".join(rows["speedup"].idxmax()),
    }
    flat = criteria.set_axis([f"{layer} pruned by {name}" for layer, name in criteria.index])
    records = compression_rows(
        "I-T5",
        flat,
        data_set=label,
        rows=list(flat.index[1:]),
        model="CNN, {row}",
        how="channels removed within a loss bound ({row})",
        mflops="MFLOPs",  # measure.compare_latency's table, accuracy as a fraction
        accuracy="test acc",
        percent=False,
    )
    return Findings(glue, compressions=records)
