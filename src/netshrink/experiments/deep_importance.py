"""The Node importance chapter's deeper networks (draft 004, sections 4 to 5.2): importance per
layer of a 3-hidden-layer MLP by batch size and dropout, iterative pruning with rewinding to the
surviving nodes' initial weights, and a CNN's channels pruned by overall against per-class loss.
Importance is always measured on the validation split; the test split only reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from netshrink import cache, data, measure, train
from netshrink.cache import TrainResult
from netshrink.checks import prunable_layers
from netshrink.compress import importance, masking, prune, search
from netshrink.compress.masking import MaskEvaluation
from netshrink.experiments.deep_importance_findings import (  # imported from here by the chapter
    criteria_findings,
    per_class_findings,
    rewind_findings,
    setting_findings,
)
from netshrink.progress import update as report_progress
from netshrink.train import TrainConfig

__all__ = [
    "channel_ablations", "class_accuracy_after_pruning", "class_criteria", "conv4_config",
    "criteria_findings", "layer_counts", "layer_importance", "mlp3_config", "per_class_findings",
    "rewind_findings", "rewind_rounds", "rewind_seeds", "setting_findings",
]  # fmt: skip


def mlp3_config(
    dataset: str,
    *,
    hidden: Sequence[int] = (128, 128, 128),
    batch_size: int = 32,
    dropout: float = 0.0,
    epochs: int = 5,
    seed: int = 0,
    data_kwargs: dict | None = None,
    precision: str = "float32",
) -> TrainConfig:
    """Section 4: the MLP with 3 hidden layers, Adam 1e-3."""
    return TrainConfig(
        "mlp",
        dataset,
        {"hidden": list(hidden), "dropout": dropout},
        dict(data_kwargs or {}),
        optimizer="adam",
        lr=1e-3,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        precision=precision,
    )


def layer_importance(
    nets: Mapping[str, TrainResult | Sequence[TrainResult]], loader: Iterable, tol: float
) -> pd.DataFrame:
    """Loss change of every node of every hidden layer, one row per (setting, network, layer,
    node), with that network's test accuracy. `nets`: per setting, one network or one per seed
    (`network` numbers them in order)."""
    report_progress(stage="node importance per layer")
    frames = []
    for setting, runs in nets.items():
        for index, net in enumerate([runs] if isinstance(runs, TrainResult) else runs):
            for layer in prunable_layers(net.model):
                change = importance.loss_change(net.model, layer, loader)
                frames.append(
                    pd.DataFrame(
                        {
                            "setting": setting,
                            "network": index,
                            "layer": layer,
                            "node": range(len(change)),
                            "loss_change": change.numpy(),
                            "class": importance.classify(change, tol),
                            "test acc": net.test["acc"],
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)


def layer_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Nodes of each class per (setting, layer), the mean over the setting's networks, with their
    mean test accuracy and how many networks (`table`: `layer_importance`)."""
    keys = [table["setting"], table["network"], table["layer"]]
    per_net = pd.crosstab(keys, table["class"]).reindex(columns=importance.CLASSES, fill_value=0)
    per_net["test acc"] = table.groupby(["setting", "network", "layer"])["test acc"].first()
    means = per_net.groupby(level=["setting", "layer"], sort=False).mean()
    means["networks"] = per_net.groupby(level=["setting", "layer"], sort=False).size()
    order = list(dict.fromkeys(table["setting"]))
    return means.reindex(order, level=0).rename_axis(columns=None)


def _apply_keeps(model: nn.Module, keeps: Mapping[str, torch.Tensor]) -> nn.Module:
    for layer, keep in keeps.items():
        model = prune.remove_nodes(model, layer, keep)
    return model


def rewind_rounds(
    config: TrainConfig,
    splits: data.DataSplits,
    val_loader: Iterable,
    rounds: int,
    tol: float,
    progress: bool = True,
    trainer: Callable[..., TrainResult] = cache.train_cached,
) -> pd.DataFrame:
    """Iterative weight initialisation by node importance (our reading of draft 004, section 4.3).

    Round 0 trains `config`. Each round then removes the nodes of the last trained network whose
    removal does not raise the validation loss by more than `tol`, and trains the smaller
    architecture twice for the same epochs: from the surviving nodes' *initial* weights of the
    previous round ("importance init"), and from a fresh random initialisation ("random init").
    The next round continues from the importance-init network. Every network is trained by
    `trainer(config, splits=..., progress=...)` (a chapter passes its run's `train`, which records
    each model in `models.json`); the initial weights are kept on the CPU. One row per round.
    """
    report_progress(stage="rewinding rounds")
    if rounds < 0:
        raise ValueError(f"rounds={rounds} must be a non-negative integer")
    net = trainer(config, splits=splits, progress=progress)
    start = cache.initial_model(config, device="cpu")
    test_loader = data.make_loader(splits.test, 10_000, device=next(net.model.parameters()).device)
    rows = [
        {
            "round": 0,
            "widths": "-".join(map(str, config.model_kwargs["hidden"])),
            "parameters": net.n_parameters,
            "pruned, not retrained": float("nan"),
            "importance init": net.test["acc"],
            "random init": net.test["acc"],
        }
    ]
    for r in range(1, rounds + 1):
        pruned, keeps = search.prune_layers(net.model, val_loader, tol)
        widths = [pruned.get_submodule(layer).out_features for layer in keeps]
        start = _apply_keeps(start, {layer: keep.cpu() for layer, keep in keeps.items()})
        model_kwargs = {**config.model_kwargs, "hidden": widths}
        rewound = dataclasses.replace(config, model_kwargs=model_kwargs, init=cache.store_init(start))
        fresh = dataclasses.replace(config, model_kwargs=model_kwargs, seed=config.seed + 1000 * r)
        net = trainer(rewound, splits=splits, progress=progress)
        plain = trainer(fresh, splits=splits, progress=progress)
        rows.append(
            {
                "round": r,
                "widths": "-".join(map(str, widths)),
                "parameters": net.n_parameters,
                "pruned, not retrained": train.evaluate(pruned, test_loader)["acc"],
                "importance init": net.test["acc"],
                "random init": plain.test["acc"],
            }
        )
    return pd.DataFrame(rows).set_index("round")


def rewind_seeds(
    config: TrainConfig,
    splits: data.DataSplits,
    val_loader: Iterable,
    rounds: int,
    tol: float,
    seeds: int,
    trainer: Callable[..., TrainResult] = cache.train_cached,
) -> pd.DataFrame:
    """`rewind_rounds` from `seeds` initialisations (config.seed, +1, ...): one row per
    (network, round)."""
    if seeds < 1:
        raise ValueError(f"seeds={seeds} must be an integer >= 1")
    runs = {
        i: rewind_rounds(dataclasses.replace(config, seed=config.seed + i), splits, val_loader, rounds, tol,
                         trainer=trainer)
        for i in range(seeds)
    }  # fmt: skip
    return pd.concat(runs, names=["network"])


def conv4_config(
    dataset: str, *, epochs: int = 5, seed: int = 0, data_kwargs: dict | None = None
) -> TrainConfig:
    """Section 5: the CNN with 4 conv layers and a dense layer, Adam 1e-3, batch 64."""
    return TrainConfig(
        "conv4",
        dataset,
        {"in_channels": 1, "image_size": 28},
        dict(data_kwargs or {}),
        optimizer="adam",
        lr=1e-3,
        epochs=epochs,
        batch_size=64,
        seed=seed,
    )


def channel_ablations(
    model: nn.Module, layers: Sequence[str], val_loader: Iterable
) -> dict[str, MaskEvaluation]:
    """The oracle (per class) for every channel of each layer, on the validation data."""
    report_progress(stage="channel ablations")
    return {layer: importance.ablate(model, layer, val_loader) for layer in layers}


def class_accuracy_after_pruning(
    model: nn.Module,
    ablations: Mapping[str, MaskEvaluation],
    test_loader: Iterable,
    fractions: Sequence[float],
    classes: Sequence[str],
) -> pd.DataFrame:
    """Per-class test accuracy after removing the least important fraction of each layer's
    channels (importance from `ablations`, on validation data), one layer at a time, all
    fractions of a layer in one batched pass. One row per (layer, fraction, class)."""
    report_progress(stage="per-class accuracy after pruning")
    rows = []
    for layer, result in ablations.items():
        n = len(result.nodes)
        counts = [min(int(round(f * n)), n - 1) for f in fractions]
        keep = search.prefix_masks(result.loss_change.argsort(), counts)
        acc = masking.evaluate_masks(model, layer, test_loader, keep=keep).class_acc
        for fraction, k, row in zip(fractions, counts, acc, strict=True):
            rows += [
                {"layer": layer, "fraction removed": fraction, "removed": k, "class": c, "acc": float(a)}
                for c, a in zip(classes, row, strict=True)
            ]
    return pd.DataFrame(rows)


def class_criteria(
    model: nn.Module,
    ablations: Mapping[str, MaskEvaluation],
    val_loader: Iterable,
    test_loader: Iterable,
    tol: float,
    latency_batch: torch.Tensor,
    repeats: int = 20,
) -> pd.DataFrame:
    """Pruning by overall against per-class loss, each layer on its own (`search.prune_within`).

    "overall loss": the most least-important channels whose joint removal keeps the validation
    loss within `tol` of the original's. "every class's loss": keeps every class's loss within
    `tol`. One row per (layer, criterion): channels left of the layer's channels, test accuracy,
    lowest class accuracy, largest drop of a class's accuracy, and parameters, FLOPs and the forward time on
    `latency_batch` of every pruned model, timed side by side with the original.
    """
    report_progress(stage="pruning by class accuracy")
    layers = list(ablations)
    intact = importance.ablate(model, layers[0], test_loader, nodes=[])
    base = intact.intact_class_acc
    rows = {
        ("(none)", "original"): {
            "channels left": pd.NA,
            "channels": pd.NA,
            "test acc": intact.intact_acc,
            "lowest class acc": float(base.min()),
            "largest class drop": 0.0,
        }
    }
    models = {("(none)", "original"): model}
    for layer, result in ablations.items():
        n = len(result.nodes)
        for name, per_class in (("overall loss", False), ("every class's loss", True)):
            pruned = search.prune_within(model, layer, val_loader, tol, per_class=per_class, ablations=result)
            after = importance.ablate(pruned.model, layer, test_loader, nodes=[])
            acc = after.intact_class_acc
            rows[(layer, name)] = {
                "channels left": pruned.nodes_left,
                "channels": n,
                "test acc": after.intact_acc,
                "lowest class acc": float(acc.min()),
                "largest class drop": float((base - acc).max()),
            }
            models[(layer, name)] = pruned.model
    cost = measure.compare_latency(
        {f"{k[0]}: {k[1]}": m for k, m in models.items()}, latency_batch, repeats=repeats
    )
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table.astype({"channels left": "Int64", "channels": "Int64"})  # empty for the original
    cost.index = table.index
    return table.join(cost).rename_axis(["layer", "criterion"])
