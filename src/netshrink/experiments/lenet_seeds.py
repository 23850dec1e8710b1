"""The week-6 network over several seeds (D-T5-seeds): the original trained with each seed, both
decomposition plans applied to it and fine-tuned alike, so that the accuracies set beside draft
002's are means with the range one more seed's network would take. D-T5 itself (timing, operations)
stays the first seed's: time does not depend on the seed, accuracy does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from netshrink import data, models, stats
from netshrink.cache import TrainResult
from netshrink.experiments.tensor_decomposition import (
    Decomposed,
    FineTune,
    decompose_and_fine_tune,
    lenet_config,
)
from netshrink.train import TrainConfig

__all__ = ["lenet_over_seeds", "seed_summary"]


def lenet_over_seeds(
    first: tuple[TrainResult, Decomposed],
    train: Callable[..., TrainResult],
    splits: data.DataSplits,
    plans: Mapping[str, Mapping[str, Any]],
    fine_tune: FineTune,
    *,
    seeds: int,
    seed: int,
    epochs: int,
    finetune_epochs: int,
    lr: float,
    data_kwargs: dict,
) -> pd.DataFrame:
    """D-T5-seeds: `first` (the seed-`seed` network and its decompositions) and `seeds` - 1 more,
    each trained by `train` (`lenet_config` with seeds `seed` + 1, ...) on `splits` and decomposed
    and fine-tuned like the first (`decompose_and_fine_tune`). One row per (seed, model):
    parameters, test accuracy and the accuracy before fine-tuning, fractions."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds={seeds!r}: the networks over seeds must be a positive integer")
    runs = {seed: first}
    for s in range(seed + 1, seed + seeds):
        config: TrainConfig = lenet_config(epochs=epochs, seed=s, data_kwargs=data_kwargs)
        base = train(config, splits=splits)
        runs[s] = (
            base,
            decompose_and_fine_tune(base, splits, plans, fine_tune, epochs=finetune_epochs, lr=lr, seed=s),
        )
    rows = []
    for s, (base, decomposed) in runs.items():
        acc = base.test["acc"]
        rows.append({"seed": s, "model": "original", "parameters": models.count_parameters(base.model),
                     "test accuracy": acc, "accuracy before fine-tuning": acc})  # fmt: skip
        for name, tuned in decomposed.tuned.items():
            size = models.count_parameters(tuned.model)
            rows.append({"seed": s, "model": f"{name}, fine-tuned", "parameters": size,
                         "test accuracy": tuned.test["acc"],
                         "accuracy before fine-tuning": tuned.before["acc"]})  # fmt: skip
    return pd.DataFrame(rows)


def seed_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per model of `lenet_over_seeds`' table: the seeds, the mean test accuracy and the 95 %
    range one more seed's network would take (`stats.one_more_range`; NaN with one seed)."""
    rows = {}
    for model, group in per_seed.groupby("model", sort=False):
        accs = group["test accuracy"].to_numpy()
        low, high = stats.one_more_range(accs)
        rows[model] = {"seeds": len(accs), "test accuracy": float(accs.mean()),
                       "accuracy range low": low, "accuracy range high": high}  # fmt: skip
    return pd.DataFrame(rows).T.rename_axis("model")
