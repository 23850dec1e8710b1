"""The Random node pruning chapter (draft 004, section 3.1): trials of random removal over several
trained networks, the draft's tables to set beside ours, a test of one cause of a gap (the
initialisation), and the timing of the batched evaluation. Algorithm 2: `random_shrink`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from netshrink import data, published, stats
from netshrink.cache import TrainResult
from netshrink.checks import check_int, node_count
from netshrink.compress import prune
from netshrink.compress.masking import MaskEvaluation, evaluate_masks
from netshrink.experiments.mask_benchmark import benchmark_findings, mask_benchmark, time_mask_evaluation
from netshrink.experiments.random_init import init_findings, init_table, init_verdict, keras_init_configs
from netshrink.findings import Findings
from netshrink.items import nodes_removed
from netshrink.progress import update as report_progress
from netshrink.stats import network_means
from netshrink.train import TrainConfig

__all__ = [
    "DATASETS",
    "DRAFT_INTACT",
    "ITEMS",
    "N_VALUES",
    "SHRINK_N_VALUES",
    "benchmark_findings",
    "evaluation_loader",
    "glue_key",
    "init_findings",
    "init_table",
    "init_verdict",
    "keras_init_configs",
    "mask_benchmark",
    "network_configs",
    "network_findings",
    "network_means",
    "nodes_removed",
    "random_trials",
    "scores_frame",
    "spread_findings",
    "statistics_table",
    "time_mask_evaluation",
    "trial_findings",
]

N_VALUES = published.N_VALUES
SHRINK_N_VALUES = published.SHRINK_N_VALUES


def network_configs(
    dataset: str,
    n_networks: int,
    *,
    seed: int = 0,
    epochs: int = 5,
    batch_size: int = 32,
    hidden: int = 128,
    data_kwargs: dict | None = None,
) -> list[TrainConfig]:
    """The draft's network (one hidden layer of `hidden`, Adam 1e-3, `epochs` epochs, batch 32),
    trained `n_networks` times with seeds seed, seed+1, ..."""
    check_int("n_networks", n_networks, 1)
    return [
        TrainConfig(
            "mlp",
            dataset,
            {"hidden": [hidden]},
            dict(data_kwargs or {}),
            optimizer="adam",
            lr=1e-3,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed + i,
        )
        for i in range(n_networks)
    ]


def random_trials(
    networks: Sequence[TrainResult],
    loader,
    n_values: Sequence[int],
    n_trials: int,
    seed: int = 0,
    layer: str = "hidden.0",
) -> pd.DataFrame:
    """Test loss and accuracy after removing n random nodes, `n_trials` masks per n and network.

    Returns one row per (network, n, trial) with columns `network`, `n`, `trial`, `loss`, `acc`,
    and the intact network's `intact_loss` and `intact_acc` (to measure each change from its own start).
    """
    report_progress(stage="random node trials")
    frames = []
    for net_index, net in enumerate(networks):
        n_nodes = node_count(net.model.get_submodule(layer))
        gen = torch.Generator().manual_seed(seed * 1000 + net_index)
        for n in n_values:
            masks = prune.random_node_masks(n_nodes, n, n_trials, generator=gen)
            scores = evaluate_masks(net.model, layer, loader, keep=masks)
            frames.append(
                scores_frame(scores).assign(
                    network=net_index,
                    n=n,
                    trial=range(n_trials),
                    intact_loss=scores.intact_loss,
                    intact_acc=scores.intact_acc,
                )
            )
    return pd.concat(frames, ignore_index=True)[
        ["network", "n", "trial", "loss", "acc", "intact_loss", "intact_acc"]
    ]


def scores_frame(scores: MaskEvaluation) -> pd.DataFrame:
    """`loss` and `acc` columns, one row per mask (the intact model left out)."""
    return pd.DataFrame({"loss": scores.loss.numpy(), "acc": scores.acc.numpy()})


def evaluation_loader(
    splits: data.DataSplits, split: str = "test", batch_size: int = 10_000, device: torch.device | str = "cpu"
):
    """Large batches, held on `device`: mask evaluation shares each batch's activations among all masks."""
    return data.make_loader(getattr(splits, split), batch_size, device=device)


def statistics_table(trials: pd.DataFrame, value: str, item: str, network: int = 0) -> pd.DataFrame:
    """The draft's statistics of `value` per n for one trained network, the draft's rows beside."""
    ours = stats.describe(trials[trials["network"] == network], "n", value)
    return (
        stats.beside_draft(ours, published.RANDOM_PRUNING_TABLES[item], "draft 004")
        if item in published.RANDOM_PRUNING_TABLES
        else ours
    )


DATASETS = ("mnist", "fashion-mnist")
DRAFT_INTACT = {"mnist": published.MNIST_128}
"""Per data set where draft 004 gives it: its intact network's test accuracy and loss."""

ITEMS = {"mnist": ("R-T1", "R-T2", "R-F1", "R-F2"), "fashion-mnist": ("R-T4", "R-T5", "R-F4", "R-F4")}
"""Per data set: the accuracy and loss tables and figures of the random trials."""


def glue_key(dataset: str) -> str:
    """'fashion-mnist' -> 'fashion_mnist': the data set's part of a glue name."""
    return dataset.replace("-", "_")


def network_findings(
    nets: Mapping[str, Sequence[TrainResult]], splits: Mapping[str, data.DataSplits]
) -> Findings:
    """The prose's numbers about the trained networks of each data set: network 0's test accuracy
    and loss, the mean accuracy over networks with its 95 % interval, the training and validation
    images, beside draft 004's 128-node network."""
    glue = {
        "draft_base_acc_mnist": 100 * published.MNIST_128["acc"],
        "draft_base_loss_mnist": published.MNIST_128["loss"],
    }
    for ds, runs in nets.items():
        mean, low, high = stats.mean_ci([100 * r.test["acc"] for r in runs])
        glue |= {
            f"base_acc_{glue_key(ds)}": 100 * runs[0].test["acc"],
            f"base_loss_{glue_key(ds)}": runs[0].test["loss"],
            f"base_mean_{glue_key(ds)}": mean,
            f"base_loss_mean_{glue_key(ds)}": float(np.mean([r.test["loss"] for r in runs])),
            f"base_low_{glue_key(ds)}": low,
            f"base_high_{glue_key(ds)}": high,
            f"n_train_{glue_key(ds)}": len(splits[ds].train),
            f"n_val_{glue_key(ds)}": len(splits[ds].val),
        }
    return Findings(glue)


def _where(value: float, low: float, high: float) -> str:
    """Where a draft's one-network number lies against the range of one network's mean."""
    if low <= value <= high:
        return "within the 95 % range of one network's mean"
    side = "below" if value < low else "above"
    return f"outside the 95 % range of one network's mean ({side} it)"


def trial_findings(trials: pd.DataFrame, dataset: str, label: str) -> Findings:
    """One data set's random trials: at the smallest and largest n, the mean test accuracy and
    loss over networks (each network's mean over its masks) set beside draft 004's tables; for
    the prose, in percent or points, the mean accuracy with its 95 % interval, the draft's mean
    and where it lies against our interval, and the standard deviation over network 0's masks."""
    t_acc, t_loss = ITEMS[dataset][:2]
    key, first_n, largest = glue_key(dataset), int(trials["n"].min()), int(trials["n"].max())
    acc_table, loss_table = published.RANDOM_PRUNING_TABLES[t_acc], published.RANDOM_PRUNING_TABLES[t_loss]
    acc, loss = network_means(trials, "acc"), network_means(trials, "loss")
    nets = trials["network"].nunique()
    sd = trials[trials["network"] == 0].groupby("n")["acc"].std()
    draft_max = acc_table.loc["mean", largest] if largest in acc_table.columns else float("nan")
    glue = {
        "first_n": first_n,
        f"mean_acc_first_n_{key}": 100 * acc.loc[first_n, "mean"],
        f"mean_acc_max_n_{key}": 100 * acc.loc[largest, "mean"],
        f"low_acc_max_n_{key}": 100 * acc.loc[largest, "low"],
        f"high_acc_max_n_{key}": 100 * acc.loc[largest, "high"],
        f"draft_mean_acc_max_n_{key}": 100 * draft_max,
        f"range_low_acc_max_n_{key}": 100 * acc.loc[largest, "range low"],
        f"range_high_acc_max_n_{key}": 100 * acc.loc[largest, "range high"],
        f"draft_where_max_n_{key}": _where(
            draft_max, acc.loc[largest, "range low"], acc.loc[largest, "range high"]
        ),
        f"sd_first_n_{key}": 100 * sd[first_n],
        f"sd_max_n_{key}": 100 * sd[largest],
        f"mean_loss_first_n_{key}": loss.loc[first_n, "mean"],
        f"mean_loss_max_n_{key}": loss.loc[largest, "mean"],
    }
    compare = [
        {
            "item": item,
            "quantity": f"{label}: mean test {what}, {nodes_removed(n)} (mean over networks)",
            "ours": means.loc[n, "mean"],
            "draft": table.loc["mean", n],
            "source": "draft 004",
            "spread": means.loc[n, "range high"] - means.loc[n, "mean"],
            "spread_what": f"95 % range of one network's mean about our mean over {nets} networks",
        }
        for n in sorted({first_n, largest} & set(acc_table.columns))
        for item, means, table, what in (
            (t_acc, acc, acc_table, "accuracy"),
            (t_loss, loss, loss_table, "loss"),
        )
    ]
    return Findings(glue, compare + _change_rows(trials, dataset, label))


def _change_rows(trials: pd.DataFrame, dataset: str, label: str) -> list[dict]:
    """Where the draft gives its intact network (`DRAFT_INTACT`): the change of the mean test
    accuracy and loss from each one's own intact network, ours a mean over networks."""
    if dataset not in DRAFT_INTACT:
        return []
    t_acc, t_loss = ITEMS[dataset][:2]
    nets, rows = trials["network"].nunique(), []
    for item, value, what in ((t_acc, "acc", "accuracy"), (t_loss, "loss", "loss")):
        table = published.RANDOM_PRUNING_TABLES[item]
        change = network_means(trials.assign(change=trials[value] - trials[f"intact_{value}"]), "change")
        for n in sorted({int(trials["n"].min()), int(trials["n"].max())} & set(table.columns)):
            rows.append(
                {
                    "item": item,
                    "quantity": f"{label}: change of the mean test {what} from the intact network, "
                    f"{nodes_removed(n)} (mean over networks)",
                    "ours": change.loc[n, "mean"],
                    "draft": table.loc["mean", n] - DRAFT_INTACT[dataset][value],
                    "source": "draft 004",
                    "spread": change.loc[n, "range high"] - change.loc[n, "mean"],
                    "spread_what": "95 % range of one network's mean change about our mean over "
                    f"{nets} networks",
                }
            )
    return rows


def spread_findings(spread: pd.DataFrame, dataset: str, n_trials: int) -> Findings:
    """At the largest n: the share of variance from the network, the 95 % CI half-width over
    networks and the mask-sampling error, in percentage points (`spread`: `stats.spread_by_source`)."""
    row, key = spread.iloc[-1], glue_key(dataset)
    return Findings(
        {
            f"share_network_max_n_{key}": 100 * row["share of variance from the network"],
            f"ci_half_max_n_{key}": 100 * (row["ci95 high"] - row["ci95 low"]) / 2,
            f"mask_se_max_n_{key}": 100 * 1.96 * row["sd within a network (masks)"] / n_trials**0.5,
        }
    )
