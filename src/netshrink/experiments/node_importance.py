"""The Node importance chapter (draft 004, sections 3.2 to 5.2): the loss-change importance of
every node, pruning by it, and how it behaves in deeper MLPs and in a CNN.

Chapter glue between `importance` (pure algorithms) and the notebook: tables as DataFrames,
configurations of the networks to train. Importance is always measured on the validation split;
the test split only reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from netshrink import measure, published, stats, train
from netshrink.cache import TrainResult
from netshrink.compress import importance, naive, search
from netshrink.experiments.random_pruning import glue_key
from netshrink.findings import Findings, compression_rows
from netshrink.progress import update as report_progress

LAYER = "hidden.0"


def importance_table(
    nets: Sequence[TrainResult], loader: Iterable, tol: float, layer: str = LAYER
) -> pd.DataFrame:
    """One row per (network, node): the oracle's loss and accuracy change when the node is
    removed, its class, and the first-order Taylor estimate of the loss change."""
    report_progress(stage="node importance of every hidden node")
    frames = []
    for i, net in enumerate(nets):
        result = importance.ablate(net.model, layer, loader)
        change = result.loss_change
        frames.append(
            pd.DataFrame(
                {
                    "network": i,
                    "node": range(len(change)),
                    "loss_change": change.numpy(),
                    "acc_change": (result.acc - result.intact_acc).numpy(),
                    "class": importance.classify(change, tol),
                    "taylor": importance.taylor(net.model, layer, loader).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def class_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Nodes of each class per network, with the Spearman rank correlation of the Taylor
    estimate with the oracle. One row per network."""
    counts = pd.crosstab(table["network"], table["class"]).reindex(columns=importance.CLASSES, fill_value=0)
    rho = table.groupby("network").apply(
        lambda g: stats.spearman(
            torch.tensor(g["taylor"].to_numpy()), torch.tensor(g["loss_change"].to_numpy())
        )
    )
    return counts.assign(**{"Spearman (Taylor, oracle)": rho}).rename_axis(columns=None)


def count_statistics(counts: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean, std, min and max over networks of each column of `class_counts`, per data set."""
    return pd.concat(
        {label: c.agg(["mean", "std", "min", "max"]) for label, c in counts.items()}, names=["data set"]
    )


def pruning_strategies(
    model: nn.Module,
    val_loader: Iterable,
    test_loader: Iterable,
    latency_batch: torch.Tensor,
    *,
    tol: float = 0.0,
    class_tol: float = 1e-4,
    important: float = 1e-3,
    multiple: int = 16,
    repeats: int = 20,
    layer: str = LAYER,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every strategy of `importance` on one network: (table, paths).

    `table` has one row per strategy (and the original): nodes left, validation and test loss and
    accuracy, loss evaluations, seconds, and parameters, FLOPs and the measured time of a forward
    pass on `latency_batch`, all models timed side by side. `paths` holds the steps of the
    recomputed strategies (for I-F2).
    """
    report_progress(stage="pruning strategies")
    strategies = {
        "once: worse": lambda: search.prune_once(model, layer, val_loader, tol=class_tol),
        "once: worse + zero": lambda: search.prune_once(model, layer, val_loader, tol=class_tol, zero=True),
        "exhaustive": lambda: search.prune_exhaustive(model, layer, val_loader, tol=tol),
        multiple_row(multiple): lambda: search.prune_exhaustive(
            model, layer, val_loader, tol=tol, multiple=multiple
        ),
        "greedy": lambda: search.prune_greedy(model, layer, val_loader, tol=tol, important=important),
    }
    seconds, results = measure.time_calls(strategies, repeats=1)  # each timed once, whole, in turn
    cost = measure.compare_latency(
        {"original": model, **{name: r.model for name, r in results.items()}}, latency_batch, repeats=repeats
    )
    width = model.get_submodule(layer).weight.shape[0]
    rows = {"original": {"nodes left": width, "loss evaluations": 0, "seconds": 0.0}}
    rows |= {
        name: {"nodes left": r.nodes_left, "loss evaluations": r.evaluations, "seconds": seconds[name]}
        for name, r in results.items()
    }
    models = {"original": model, **{name: r.model for name, r in results.items()}}
    for name, m in models.items():
        val, test = train.evaluate(m, val_loader), train.evaluate(m, test_loader)
        rows[name] |= {
            "val loss": val["loss"],
            "val acc": val["acc"],
            "test loss": test["loss"],
            "test acc": test["acc"],
        }
    table = pd.DataFrame(rows).T.rename_axis("strategy").join(cost)
    table["nodes left"] = table["nodes left"].astype(int)
    table["loss evaluations"] = table["loss evaluations"].astype(int)
    paths = pd.concat(
        [
            pd.DataFrame(map(dataclasses.asdict, results[s].steps)).assign(strategy=s)
            for s in ("exhaustive", "greedy")
        ],
        ignore_index=True,
    )
    return table, paths


def loss_change_benchmark(
    model: nn.Module, loader: Iterable, repeats: int = 3, layer: str = LAYER
) -> pd.DataFrame:
    """Median seconds of `importance.loss_change` and of one forward pass per node on the same
    data, the speedup, and whether the two agree (to 1e-5)."""
    report_progress(stage="loss-change benchmark")
    med, out = measure.time_calls(
        {
            "batched": lambda: importance.loss_change(model, layer, loader),
            "one pass per node": lambda: naive.loss_change_naive(model, layer, loader),
        },
        repeats,
    )
    agree = bool(torch.allclose(out["batched"], out["one pass per node"], atol=1e-5))
    return pd.DataFrame(
        {
            "seconds": med,
            "speedup": {k: med["one pass per node"] / v for k, v in med.items()},
            "nodes": len(out["batched"]),
            "agree": agree,
        }
    ).rename_axis("method")


STRATEGY_GLUE = {
    "once: worse": "once",
    "once: worse + zero": "once_zero",
    "exhaustive": "exh",
    "greedy": "greedy",
    "original": "orig",
}
"""Strategy (row of `pruning_strategies`) -> the short name its numbers are glued under; the
exhaustive search to a multiple m of 16 or any other is `multiple_row(m)`, glued as `exh<m>`."""


def multiple_row(multiple: int) -> str:
    """The row (and label) of the exhaustive search whose width must be a multiple of `multiple`."""
    return f"exhaustive, width a multiple of {multiple}"


def glue_short(strategy: str) -> str:
    """The short glue name of a row of `pruning_strategies`."""
    prefix = multiple_row(0)[:-1]
    if strategy.startswith(prefix) and strategy[len(prefix) :].isdigit():
        return f"exh{strategy[len(prefix) :]}"
    return STRATEGY_GLUE[strategy]


def base_findings(net: TrainResult) -> Findings:
    """The 128-node MNIST network's test accuracy and loss beside draft 004's (I-T2)."""
    draft = published.MNIST_128
    compare = [
        {
            "item": "I-T2",
            "quantity": f"MNIST: test {what} of the 128-node network",
            "ours": net.test[key],
            "draft": draft[key],
            "source": "draft 004",
        }
        for key, what in (("acc", "accuracy"), ("loss", "loss"))
    ]
    return Findings(
        {"base_acc_mnist": 100 * net.test["acc"], "draft_base_acc_mnist": 100 * draft["acc"]}, compare
    )


def class_findings(counts: pd.DataFrame, dataset: str) -> Findings:
    """Mean important, zero and worse nodes over networks, and the mean Spearman correlation of
    the Taylor estimate with the oracle (`counts`: `class_counts`)."""
    key = glue_key(dataset)
    glue = {f"{cls}_{key}": float(counts[cls].mean()) for cls in ("important", "zero", "worse")}
    return Findings(glue | {f"rho_{key}": float(counts["Spearman (Taylor, oracle)"].mean())})


def strategy_findings(table: pd.DataFrame, dataset: str, label: str) -> Findings:
    """I-T2/I-T3's numbers for the prose, per strategy, and a compression record per strategy
    (`table`: `pruning_strategies`)."""
    glue = {}
    for strategy in table.index:
        row, key = table.loc[strategy], f"{glue_short(strategy)}_{{}}_{glue_key(dataset)}"
        glue |= {
            key.format("left"): int(row["nodes left"]),
            key.format("acc"): 100 * float(row["test acc"]),
            key.format("evals"): int(row["loss evaluations"]),
            key.format("seconds"): float(row["seconds"]),
            key.format("speedup"): float(row["speedup"]),
        }
    if dataset == "mnist":
        faster = table.loc["exhaustive", "seconds"] < table.loc["greedy", "seconds"]
        glue["exh_vs_greedy"] = "the faster" if faster else "the slower"
    once = [r for r in table.index if r not in ("original", "greedy")]
    # measure.compare_latency's table: MFLOPs per image as `MFLOPs`, the accuracy as a fraction
    kw = {"data_set": label, "model": "MLP 128, {row}", "how": "nodes removed by importance ({row})",
          "mflops": "MFLOPs", "accuracy": "test acc"}  # fmt: skip
    compressions = compression_rows("I-T2", table, rows=once, **kw) + compression_rows(
        "I-T3", table, rows=["greedy"], **kw
    )
    return Findings(glue, compressions=compressions)
