"""The Random node pruning chapter (draft 004, section 3.1): trials of random removal over several
trained networks, Algorithm 2, and the draft's tables to set beside ours."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, published, stats
from netshrink.cache import TrainResult
from netshrink.checks import check_int, node_count
from netshrink.compress import naive, prune
from netshrink.compress.masking import MaskEvaluation, evaluate_masks
from netshrink.findings import Findings
from netshrink.progress import update as report_progress
from netshrink.train import TrainConfig

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

    Returns one row per (network, n, trial) with columns `network`, `n`, `trial`, `loss`, `acc`.
    """
    report_progress(stage="random node trials")
    frames = []
    for net_index, net in enumerate(networks):
        n_nodes = node_count(net.model.get_submodule(layer))
        gen = torch.Generator().manual_seed(seed * 1000 + net_index)
        for n in n_values:
            masks = prune.random_node_masks(n_nodes, n, n_trials, generator=gen)
            scores = evaluate_masks(net.model, layer, loader, keep=masks)
            frames.append(scores_frame(scores).assign(network=net_index, n=n, trial=range(n_trials)))
    return pd.concat(frames, ignore_index=True)[["network", "n", "trial", "loss", "acc"]]


def scores_frame(scores: MaskEvaluation) -> pd.DataFrame:
    """`loss` and `acc` columns, one row per mask (the intact model left out)."""
    return pd.DataFrame({"loss": scores.loss.numpy(), "acc": scores.acc.numpy()})


def shrink_steps(result: prune.ShrinkResult) -> pd.DataFrame:
    """Algorithm 2's record as a table: one row per (run, step) with the nodes removed, whether
    the step was kept, and the kept model's validation loss and accuracy."""
    steps, runs = result.removed.shape
    return pd.DataFrame({
        "run": torch.arange(runs).repeat(steps).numpy(),
        "step": torch.arange(steps).repeat_interleave(runs).numpy(),
        "removed": result.removed.flatten().numpy(), "accepted": result.accepted.flatten().numpy(),
        "val_loss": result.val_loss.flatten().numpy(), "val_acc": result.val_acc.flatten().numpy(),
    })  # fmt: skip


def shrink_runs(
    net: TrainResult,
    val_loader,
    test_loader,
    n_values: Sequence[int],
    n_runs: int,
    seed: int = 0,
    layer: str = "hidden.0",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Algorithm 2 for each n: (steps, final). `final` has one row per (n, run) with the nodes
    removed, validation and test loss and accuracy of the shrunk network."""
    report_progress(stage="Algorithm 2 (shrinking by random removal)")
    steps, finals = [], []
    for n in n_values:
        gen = torch.Generator().manual_seed(seed * 1000 + n)
        result = prune.shrink_randomly(net.model, layer, n, val_loader, n_runs=n_runs, generator=gen)
        test = evaluate_masks(net.model, layer, test_loader, keep=result.keep)
        table = shrink_steps(result)
        steps.append(table.assign(n=n))
        final = table[table["step"] == table["step"].max()].drop(columns=["step", "accepted"])
        finals.append(final.assign(n=n, test_loss=test.loss.numpy(), test_acc=test.acc.numpy()))
    return pd.concat(steps, ignore_index=True), pd.concat(finals, ignore_index=True)


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


def time_mask_evaluation(
    model: nn.Module, layer: str, masks: torch.Tensor, loader: Iterable, repeats: int = 3
) -> pd.DataFrame:
    """Median wall time of `masking.evaluate_masks` and of the per-mask loop on the same masks and data,
    and whether they agree. One row per method, with `seconds` and `speedup` over the loop."""
    med, results = measure.time_calls(
        {
            "batched": lambda: evaluate_masks(model, layer, loader, keep=masks),
            "per-mask loop": lambda: naive.evaluate_masks_naive(model, layer, loader, keep=masks),
        },
        repeats,
    )
    fast, slow = results["batched"], results["per-mask loop"]
    agree = all(
        torch.allclose(torch.as_tensor(getattr(fast, f)), torch.as_tensor(getattr(slow, f)), atol=1e-4)
        for f in ("loss", "acc", "intact_loss", "intact_acc")
    )
    return pd.DataFrame(
        {
            "seconds": med,
            "speedup": {k: med["per-mask loop"] / v for k, v in med.items()},
            "masks": len(masks),
            "agree": agree,
        }
    )


DATASETS = ("mnist", "fashion-mnist")
ITEMS = {"mnist": ("R-T1", "R-T2", "R-F1", "R-F2"), "fashion-mnist": ("R-T4", "R-T5", "R-F4", "R-F4")}
"""Per data set: the accuracy and loss tables and figures of the random trials."""


def glue_key(dataset: str) -> str:
    """'fashion-mnist' -> 'fashion_mnist': the data set's part of a glue name."""
    return dataset.replace("-", "_")


def network_findings(nets: Mapping[str, Sequence[TrainResult]]) -> Findings:
    """The prose's numbers about network 0 of each data set, beside draft 004's 128-node network."""
    glue = {"draft_base_acc_mnist": 100 * published.MNIST_128["acc"]}
    for ds, runs in nets.items():
        glue |= {
            f"base_acc_{glue_key(ds)}": 100 * runs[0].test["acc"],
            f"base_loss_{glue_key(ds)}": runs[0].test["loss"],
        }
    return Findings(glue)


def trial_findings(trials: pd.DataFrame, dataset: str, label: str) -> Findings:
    """The prose's numbers about one data set's random trials (network 0), and our mean accuracy
    and loss at the smallest and largest n set beside draft 004's tables."""
    t_acc, t_loss = ITEMS[dataset][:2]
    first = trials[trials["network"] == 0]
    largest = int(first["n"].max())
    acc_table, loss_table = published.RANDOM_PRUNING_TABLES[t_acc], published.RANDOM_PRUNING_TABLES[t_loss]
    glue = {
        f"mean_acc_max_n_{glue_key(dataset)}": 100 * first.loc[first["n"] == largest, "acc"].mean(),
        f"draft_mean_acc_max_n_{glue_key(dataset)}": 100 * acc_table.loc["mean", 64],
    }
    compare = []
    for n in sorted({int(first["n"].min()), largest} & set(acc_table.columns)):
        sel = first[first["n"] == n]
        for item, value, table, what in (
            (t_acc, "acc", acc_table, "accuracy"),
            (t_loss, "loss", loss_table, "loss"),
        ):
            compare.append(
                {
                    "item": item,
                    "quantity": f"{label}: mean test {what}, {n} random nodes removed",
                    "ours": sel[value].mean(),
                    "draft": table.loc["mean", n],
                    "source": "draft 004",
                }
            )
    return Findings(glue, compare)


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


def shrink_findings(final: pd.DataFrame, label: str) -> Findings:
    """Algorithm 2's best n (most nodes removed on average), its test accuracy, and the mean
    nodes removed per n set beside draft 004's R-T3."""
    removed = final.groupby("n")["removed"].mean()
    best = int(removed.idxmax())
    glue = {
        "shrink_best_n": best,
        "shrink_best_removed": float(removed.max()),
        "shrink_test_acc": 100 * float(final.loc[final["n"] == best, "test_acc"].mean()),
    }
    draft = published.RANDOM_PRUNING_TABLES["R-T3"]
    compare = [
        {
            "item": "R-T3",
            "quantity": f"{label}: mean nodes removed by Algorithm 2, n = {n}",
            "ours": mean,
            "draft": draft.loc["mean", n],
            "source": "draft 004",
        }
        for n, mean in removed.items()
        if n in draft.columns
    ]
    return Findings(glue, compare)


def mask_benchmark(
    model: nn.Module, loader: Iterable, *, n_masks: int, repeats: int, n_remove: int = 16, seed: int = 0,
    layer: str = "hidden.0",
) -> pd.DataFrame:  # fmt: skip
    """R-B1: `time_mask_evaluation` of `n_masks` random masks that each remove `n_remove` nodes."""
    report_progress(stage="mask benchmark")
    n_nodes = model.get_submodule(layer).out_features
    masks = prune.random_node_masks(n_nodes, n_remove, n_masks, generator=torch.Generator().manual_seed(seed))
    return time_mask_evaluation(model, layer, masks, loader, repeats=repeats)
