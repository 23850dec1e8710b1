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

from netshrink import cache, data, measure, stats, train
from netshrink.cache import TrainResult
from netshrink.compress import importance, naive, prune, search
from netshrink.train import TrainConfig

LAYER = "hidden.0"


def importance_table(
    nets: Sequence[TrainResult], loader: Iterable, tol: float, layer: str = LAYER
) -> pd.DataFrame:
    """One row per (network, node): the oracle's loss and accuracy change when the node is
    removed, its class, and the first-order Taylor estimate of the loss change."""
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
                    "acc_change": (result.acc[1:] - result.acc[0]).numpy(),
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
    results = {
        "once: worse": search.prune_once(model, layer, val_loader, tol=class_tol),
        "once: worse + zero": search.prune_once(model, layer, val_loader, tol=class_tol, zero=True),
        "exhaustive": search.prune_exhaustive(model, layer, val_loader, tol=tol),
        f"exhaustive, width a multiple of {multiple}": search.prune_exhaustive(
            model, layer, val_loader, tol=tol, multiple=multiple
        ),
        "greedy": search.prune_greedy(model, layer, val_loader, tol=tol, important=important),
    }
    cost = measure.compare_latency(
        {"original": model, **{name: r.model for name, r in results.items()}}, latency_batch, repeats=repeats
    )
    rows = {
        "original": {
            "nodes left": model.get_submodule(layer).weight.shape[0],
            "loss evaluations": 0,
            "seconds": 0.0,
        }
    }
    rows |= {
        name: {"nodes left": r.nodes_left, "loss evaluations": r.evaluations, "seconds": r.seconds}
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
        [results[s].steps.assign(strategy=s) for s in ("exhaustive", "greedy")], ignore_index=True
    )
    return table, paths


def mlp3_config(
    dataset: str,
    *,
    hidden: Sequence[int] = (128, 128, 128),
    batch_size: int = 32,
    dropout: float = 0.0,
    epochs: int = 5,
    seed: int = 0,
    data_kwargs: dict | None = None,
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
    )


def layer_importance(nets: Mapping[str, TrainResult], loader: Iterable, tol: float) -> pd.DataFrame:
    """Loss change of every node of every hidden layer, one row per (setting, layer, node), with
    the setting's test accuracy."""
    frames = []
    for setting, net in nets.items():
        for layer in prune.hidden_layers(net.model):
            change = importance.loss_change(net.model, layer, loader)
            frames.append(
                pd.DataFrame(
                    {
                        "setting": setting,
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
    """Nodes of each class per (setting, layer), with the test accuracy of the setting."""
    counts = pd.crosstab([table["setting"], table["layer"]], table["class"]).reindex(
        columns=importance.CLASSES, fill_value=0
    )
    acc = table.groupby(["setting", "layer"])["test acc"].first()
    order = list(dict.fromkeys(table["setting"]))
    return counts.assign(**{"test acc": acc}).reindex(order, level=0).rename_axis(columns=None)


def prune_hidden_layers(
    model: nn.Module, loader: Iterable, tol: float
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Remove, layer by layer from the first, every node whose removal does not raise the
    validation loss by more than `tol` (importance recomputed after each layer).
    Returns the smaller model and the keep-mask of each layer."""
    keeps = {}
    for layer in prune.hidden_layers(model):
        result = search.prune_once(model, layer, loader, tol=tol, zero=True)
        model, keeps[layer] = result.model, result.keep
    return model, keeps


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
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Iterative weight initialisation by node importance (our reading of draft 004, section 4.3).

    Round 0 trains `config`. Each round then removes the nodes of the last trained network whose
    removal does not raise the validation loss by more than `tol`, and trains the smaller
    architecture twice for the same epochs: from the surviving nodes' *initial* weights of the
    previous round ("importance init"), and from a fresh random initialisation ("random init").
    The next round continues from the importance-init network. Networks train on `device`; the
    initial weights are kept on the CPU. One row per round.
    """
    if rounds < 0:
        raise ValueError(f"rounds={rounds} must be a non-negative integer")
    net = cache.train_cached(config, splits=splits, progress=progress, device=device)
    start = cache.initial_model(config, device="cpu")
    test_loader = data.make_loader(splits.test, 10_000, device=device)
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
        pruned, keeps = prune_hidden_layers(net.model, val_loader, tol)
        widths = [pruned.get_submodule(layer).out_features for layer in prune.hidden_layers(pruned)]
        start = _apply_keeps(start, {layer: keep.cpu() for layer, keep in keeps.items()})
        model_kwargs = {**config.model_kwargs, "hidden": widths}
        rewound = dataclasses.replace(config, model_kwargs=model_kwargs, init=cache.store_init(start))
        fresh = dataclasses.replace(config, model_kwargs=model_kwargs, seed=config.seed + 1000 * r)
        net = cache.train_cached(rewound, splits=splits, progress=progress, device=device)
        plain = cache.train_cached(fresh, splits=splits, progress=progress, device=device)
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
) -> dict[str, importance.Ablations]:
    """The oracle (per class) for every channel of each layer, on the validation data."""
    return {layer: importance.ablate(model, layer, val_loader) for layer in layers}


def class_accuracy_after_pruning(
    model: nn.Module,
    ablations: Mapping[str, importance.Ablations],
    test_loader: Iterable,
    fractions: Sequence[float],
    classes: Sequence[str],
) -> pd.DataFrame:
    """Per-class test accuracy after removing the least important fraction of each layer's
    channels (importance from `ablations`, on validation data), one layer at a time, all
    fractions of a layer in one batched pass. One row per (layer, fraction, class)."""
    rows = []
    for layer, result in ablations.items():
        n = len(result.nodes)
        counts = [min(int(round(f * n)), n - 1) for f in fractions]
        keep = search.prefix_masks(result.loss_change.argsort(), counts)
        acc = importance.ablate_masks(model, layer, test_loader, keep).class_acc[1:]
        for fraction, k, row in zip(fractions, counts, acc, strict=True):
            rows += [
                {"layer": layer, "fraction removed": fraction, "removed": k, "class": c, "acc": float(a)}
                for c, a in zip(classes, row, strict=True)
            ]
    return pd.DataFrame(rows)


def class_criteria(
    model: nn.Module,
    ablations: Mapping[str, importance.Ablations],
    val_loader: Iterable,
    test_loader: Iterable,
    tol: float,
    latency_batch: torch.Tensor,
    repeats: int = 20,
) -> pd.DataFrame:
    """Pruning by overall against per-class loss, each layer on its own (`search.prune_within`).

    "overall loss": the most least-important channels whose joint removal keeps the validation
    loss within `tol` of the original's. "every class's loss": keeps every class's loss within
    `tol`. One row per (layer, criterion): channels left, test accuracy, lowest class accuracy,
    largest drop of a class's accuracy, and parameters, FLOPs and the forward time on
    `latency_batch` of every pruned model, timed side by side with the original.
    """
    layers = list(ablations)
    intact = importance.ablate(model, layers[0], test_loader, nodes=[])
    base = intact.class_acc[0]
    rows = {
        ("(none)", "original"): {
            "channels left": "",
            "test acc": float(intact.acc[0]),
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
            acc = after.class_acc[0]
            rows[(layer, name)] = {
                "channels left": f"{pruned.nodes_left} of {n}",
                "test acc": float(after.acc[0]),
                "lowest class acc": float(acc.min()),
                "largest class drop": float((base - acc).max()),
            }
            models[(layer, name)] = pruned.model
    cost = measure.compare_latency(
        {f"{k[0]}: {k[1]}": m for k, m in models.items()}, latency_batch, repeats=repeats
    )
    table = pd.DataFrame.from_dict(rows, orient="index")
    cost.index = table.index
    return table.join(cost).rename_axis(["layer", "criterion"])


def loss_change_benchmark(
    model: nn.Module, loader: Iterable, repeats: int = 3, layer: str = LAYER
) -> pd.DataFrame:
    """Median seconds of `importance.loss_change` and of one forward pass per node on the same
    data, the speedup, and whether the two agree (to 1e-5)."""
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
