"""The Random node pruning chapter (seed 004, section 3.1): trials of random removal over several
trained networks, Algorithm 2, and the draft's tables to set beside ours."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, stats
from netshrink.cache import TrainResult
from netshrink.compress import naive, prune
from netshrink.train import TrainConfig

N_VALUES = (1, 2, 4, 8, 16, 32, 64)
SHRINK_N_VALUES = (1, 2, 3, 4, 8)
_ROWS = ("mean", "std", "min", "25%", "50%", "75%", "max")


def _seed_table(values: Sequence[Sequence[float]], columns: Sequence[int]) -> pd.DataFrame:
    return pd.DataFrame(values, index=list(_ROWS), columns=list(columns))


# The Oslo draft's tables (seed 004), as printed; columns are n, the nodes removed per trial.
SEED_TABLES = {
    "R-T1": _seed_table([
        [0.9720, 0.9714, 0.9704, 0.9681, 0.9619, 0.9427, 0.8485],
        [0.0009, 0.0013, 0.0020, 0.0032, 0.0056, 0.0130, 0.0417],
        [0.9687, 0.9624, 0.9602, 0.9523, 0.9270, 0.8861, 0.6831],
        [0.9715, 0.9708, 0.9694, 0.9664, 0.9588, 0.9364, 0.8215],
        [0.9721, 0.9717, 0.9708, 0.9685, 0.9628, 0.9448, 0.8546],
        [0.9726, 0.9724, 0.9719, 0.9704, 0.9660, 0.9526, 0.8803],
        [0.9736, 0.9743, 0.9744, 0.9749, 0.9724, 0.9662, 0.9328],
    ], N_VALUES),
    "R-T2": _seed_table([
        [0.0895, 0.0914, 0.0948, 0.1024, 0.1216, 0.1794, 0.4466],
        [0.0026, 0.0038, 0.0058, 0.0095, 0.0164, 0.0361, 0.1074],
        [0.0848, 0.0839, 0.0838, 0.0844, 0.0901, 0.1127, 0.2306],
        [0.0877, 0.0887, 0.0907, 0.0957, 0.1101, 0.1516, 0.3662],
        [0.0890, 0.0907, 0.0937, 0.1012, 0.1186, 0.1738, 0.4313],
        [0.0908, 0.0932, 0.0981, 0.1069, 0.1305, 0.1980, 0.5112],
        [0.0997, 0.1245, 0.1292, 0.1489, 0.2233, 0.3409, 0.9883],
    ], N_VALUES),
    "R-T3": _seed_table([
        [7.4000, 8.9000, 8.2500, 5.8000, 2.4000],
        [1.6983, 2.7891, 2.7314, 3.3023, 3.7613],
        [5.0, 4.0, 3.0, 0.0, 0.0],
        [6.0, 7.5, 6.0, 4.0, 0.0],
        [7.0, 8.0, 9.0, 4.0, 0.0],
        [8.25, 10.0, 9.75, 8.0, 8.0],
        [11.0, 16.0, 12.0, 12.0, 8.0],
    ], SHRINK_N_VALUES),
    "R-T4": _seed_table([
        [0.8677, 0.8667, 0.8652, 0.8618, 0.8543, 0.8295, 0.7394],
        [0.0021, 0.0030, 0.0042, 0.0059, 0.0096, 0.0200, 0.0443],
        [0.8578, 0.8470, 0.8470, 0.8405, 0.8050, 0.7382, 0.5493],
        [0.8670, 0.8653, 0.8632, 0.8582, 0.8491, 0.8190, 0.7171],
        [0.8684, 0.8674, 0.8659, 0.8626, 0.8558, 0.8336, 0.7437],
        [0.8686, 0.8685, 0.8681, 0.8663, 0.8611, 0.8441, 0.7698],
        [0.8726, 0.8735, 0.8745, 0.8767, 0.8747, 0.8656, 0.8307],
    ], N_VALUES),
    "R-T5": _seed_table([
        [0.3578, 0.3601, 0.3643, 0.3730, 0.3939, 0.4607, 0.7062],
        [0.0049, 0.0070, 0.0098, 0.0137, 0.0228, 0.0495, 0.1182],
        [0.3459, 0.3452, 0.3434, 0.3448, 0.3515, 0.3725, 0.4730],
        [0.3557, 0.3559, 0.3576, 0.3629, 0.3772, 0.4245, 0.6235],
        [0.3564, 0.3584, 0.3625, 0.3711, 0.3900, 0.4504, 0.6867],
        [0.3591, 0.3632, 0.3693, 0.3811, 0.4060, 0.4857, 0.7619],
        [0.3791, 0.4055, 0.4035, 0.4297, 0.5106, 0.7079, 1.3649],
    ], N_VALUES),
}  # fmt: skip
SEED_BASE = {"mnist": {"acc": 0.9724, "loss": 0.0879}}


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
    return stats.beside_seed(ours, SEED_TABLES[item], "seed 004") if item in SEED_TABLES else ours


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
