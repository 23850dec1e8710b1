"""The numbers and sentences the deeper node-importance sections quote (`Findings`), from the
tables of `deep_importance` (which re-exports these for the chapter)."""

from __future__ import annotations

import pandas as pd

from netshrink import stats
from netshrink.findings import Findings, compression_rows

__all__ = ["criteria_findings", "per_class_findings", "rewind_findings", "setting_findings"]


def _paired(first: pd.Series, last: pd.Series, words: tuple[str, str]) -> dict:
    """The paired difference last - first over networks (points): mean, 95 % t interval, how
    many, and `words[0]` (up) / `words[1]` (down) where the interval excludes zero, else words
    that say the networks do not resolve it (or that one network gives no interval)."""
    diff = (last - first).dropna()
    mean, low, high = stats.mean_ci(diff.to_numpy())
    if len(diff) < 2:
        verdict = "one network each, so no interval"
    elif low > 0 or high < 0:
        verdict = words[0] if mean > 0 else words[1]
    else:
        verdict = f"no difference that {len(diff)} networks resolve"
    return {"diff": mean, "low": low, "high": high, "networks": len(diff), "verdict": verdict}


def setting_findings(importance_rows: pd.DataFrame, setting: str, n_nodes: int) -> Findings:
    """I-F3/I-F4: the share of important nodes (%) at the first and last setting, means over
    each setting's networks, their paired difference with its 95 % interval and what it says,
    and both mean test accuracies (`importance_rows`: `layer_importance`, `n_nodes`: hidden
    nodes in all)."""
    rows = importance_rows
    share = 100 * (rows["class"] == "important").groupby([rows["setting"], rows["network"]], sort=False).sum()
    share = share / n_nodes
    acc = 100 * rows.groupby(["setting", "network"], sort=False)["test acc"].first()
    order = list(dict.fromkeys(rows["setting"]))
    first, last, key = order[0], order[-1], setting.split()[0]
    words = (f"more important nodes at {setting} {last}", f"fewer important nodes at {setting} {last}")
    paired = _paired(share[first], share[last], words)
    return Findings(
        {
            f"{key}_important_first": float(share[first].mean()),
            f"{key}_important_last": float(share[last].mean()),
            f"{key}_first": first,
            f"{key}_last": last,
            f"{key}_direction": paired["verdict"],
            **{f"{key}_{name}": paired[name] for name in ("diff", "low", "high", "networks")},
            f"{key}_acc_first": float(acc[first].mean()),
            f"{key}_acc_last": float(acc[last].mean()),
        }
    )


def rewind_findings(rewind: pd.DataFrame) -> Findings:
    """I-T4's first and last round: network 0's widths and parameters, the mean accuracies (%)
    over networks, and importance init minus random init at the last round, paired by network
    (`rewind`: `rewind_seeds`, index (network, round); or one network's `rewind_rounds`)."""
    table = rewind if rewind.index.nlevels == 2 else pd.concat({0: rewind}, names=["network"])
    rounds = table.index.get_level_values("round")
    first, last = table[rounds == rounds.min()], table[rounds == rounds.max()]
    zero = last.xs(0, level="network").iloc[0]
    words = ("importance init ends higher", "importance init ends lower")
    paired = _paired(100 * last["random init"], 100 * last["importance init"], words)
    return Findings(
        {
            "rewind_widths": zero["widths"],
            "rewind_params": int(zero["parameters"]),
            "rewind_params0": int(first.xs(0, level="network")["parameters"].iloc[0]),
            "rewind_acc_importance": 100 * float(last["importance init"].mean()),
            "rewind_acc_random": 100 * float(last["random init"].mean()),
            "rewind_acc0": 100 * float(first["importance init"].mean()),
            **{f"rewind_{name}": paired[name] for name in ("diff", "low", "high", "networks")},
            "rewind_verdict": paired["verdict"],
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
    left = rows["channels left"].astype(int)
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
    )
    return Findings(glue, compressions=records)
