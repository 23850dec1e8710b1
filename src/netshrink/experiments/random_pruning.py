"""The Random node pruning chapter (draft 004, section 3.1): trials of random removal over several
trained networks, Algorithm 2, and the draft's tables to set beside ours."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, published, stats
from netshrink.cache import TrainResult
from netshrink.compress import naive, prune
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
    if n_networks < 1:
        raise ValueError(f"n_networks={n_networks} must be at least 1")
    return [TrainConfig("mlp", dataset, {"hidden": [hidden]}, dict(data_kwargs or {}), optimizer="adam",
                        lr=1e-3, epochs=epochs, batch_size=batch_size, seed=seed + i)
            for i in range(n_networks)]  # fmt: skip


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
    frames = []
    for net_index, net in enumerate(networks):
        n_nodes = net.model.hidden[0].out_features
        gen = torch.Generator().manual_seed(seed * 1000 + net_index)
        for n in n_values:
            masks = prune.random_node_masks(n_nodes, n, n_trials, generator=gen)
            metrics = prune.evaluate_masks(net.model, layer, masks, loader)
            frames.append(metrics.assign(network=net_index, n=n, trial=range(n_trials)))
    return pd.concat(frames, ignore_index=True)[["network", "n", "trial", "loss", "acc"]]


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
    steps, finals = [], []
    for n in n_values:
        gen = torch.Generator().manual_seed(seed * 1000 + n)
        result = prune.shrink_randomly(net.model, layer, n, val_loader, n_runs=n_runs, generator=gen)
        test = prune.evaluate_masks(net.model, layer, result.keep, test_loader)
        steps.append(result.steps.assign(n=n))
        finals.append(result.final.reset_index().assign(n=n, test_loss=test["loss"], test_acc=test["acc"]))
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
    """Median wall time of `prune.evaluate_masks` and of the per-mask loop on the same masks and data,
    and whether they agree. One row per method, with `seconds` and `speedup` over the loop."""
    med, results = measure.time_calls(
        {
            "batched": lambda: prune.evaluate_masks(model, layer, masks, loader),
            "per-mask loop": lambda: naive.evaluate_masks_naive(model, layer, masks, loader),
        },
        repeats,
    )
    agree = bool(((results["batched"] - results["per-mask loop"]).abs().max() < 1e-4).all())
    return pd.DataFrame(
        {
            "seconds": med,
            "speedup": {k: med["per-mask loop"] / v for k, v in med.items()},
            "masks": len(masks),
            "agree": agree,
        }  # fmt: skip
    )
