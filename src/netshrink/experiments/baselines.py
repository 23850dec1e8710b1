"""The drafts' baseline networks (draft 000 on MNIST, 003 on CIFAR-10) as training configurations,
with the numbers the drafts report (`published.BASELINES`), and the table that puts ours beside
theirs (item B-T1)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from netshrink import published
from netshrink.cache import TrainResult
from netshrink.train import TrainConfig


@dataclass(frozen=True)
class Baseline:
    """One baseline run: its configuration, and (`draft_*`, from `published.BASELINES`) what the
    draft reported for it: its document, test accuracy (None where it gives none), the epoch it
    was read at and the draft's words."""

    key: str
    item: str
    title: str
    config: TrainConfig

    @property
    def draft(self) -> str:
        return published.BASELINES[self.key][0]

    @property
    def draft_acc(self) -> float | None:
        return published.BASELINES[self.key][1]

    @property
    def draft_epoch(self) -> int | None:
        return published.BASELINES[self.key][2]

    @property
    def draft_note(self) -> str:
        return published.BASELINES[self.key][3]

    @property
    def optimiser(self) -> str:
        """The optimiser in words; Adam's `weight_decay` is an L2 penalty, AdamW's is decoupled."""
        c = self.config
        text = f"{ {'sgd': 'SGD', 'adam': 'Adam', 'adamw': 'AdamW'}[c.optimizer] } lr {c.lr:g}"
        if c.momentum:
            text += f", momentum {c.momentum:g}"
        if c.weight_decay:
            kind = "L2 penalty" if c.optimizer in ("sgd", "adam") else "weight decay"
            text += f", {kind} {c.weight_decay:g}"
        return text


def baseline_runs(
    *,
    seed: int = 0,
    val_size: int = 5000,
    mnist_train_size: int | None = None,
    mnist_test_size: int | None = None,
    mlp_epochs: int = 10,
    one_conv_epochs: int = 10,
    two_conv_epochs: int = 10,
    cifar_train_size: int | None = None,
    cifar_test_size: int | None = None,
    cifar_epochs: int = 15,
    cifar_aug_epochs: int = 50,
    cifar_lr_epochs: int = 3,
) -> list[Baseline]:
    """The ten baseline runs of the Baselines chapter, in the order of items B-F1..B-F7. The runs
    at lr 0.1 and 1 (B-F5), which only show that the net does not train, take `cifar_lr_epochs`."""
    mnist = {"val_size": val_size, "train_size": mnist_train_size, "test_size": mnist_test_size, "seed": seed}
    cifar = {"val_size": val_size, "train_size": cifar_train_size, "test_size": cifar_test_size, "seed": seed}
    mlp = TrainConfig("mlp", "mnist", {"hidden": [512, 512], "dropout": 0.4}, mnist, optimizer="sgd", lr=0.01,
                      momentum=0.9, epochs=mlp_epochs, batch_size=64, seed=seed)  # fmt: skip

    def conv_net(model: str, optimizer: str, lr: float, epochs: int, batch_size: int) -> TrainConfig:
        # draft 000 states "weight decay 0.1": read as AdamW's decoupled decay, and as Adam's L2 penalty
        return TrainConfig(model, "mnist", {}, mnist, optimizer=optimizer, lr=lr, weight_decay=0.1,
                           epochs=epochs, batch_size=batch_size, seed=seed)  # fmt: skip

    def cnn(lr: float, pool: bool = False, augment: bool = False, epochs: int = cifar_epochs) -> TrainConfig:
        return TrainConfig("cifar_cnn", "cifar10", {"pool": pool}, {**cifar, "augment": augment},
                           optimizer="adam", lr=lr, epochs=epochs, batch_size=64, seed=seed)  # fmt: skip

    runs = [  # (key, item, title, configuration)
        ("mlp", "B-F1", "MLP 2x512, dropout 0.4", mlp),
        ("one_conv", "B-F2", "one conv layer + dense 100",
         conv_net("one_conv", "adamw", 1e-4, one_conv_epochs, 64)),
        ("one_conv_l2", "B-F2", "one conv layer + dense 100, L2 reading",
         conv_net("one_conv", "adam", 1e-4, one_conv_epochs, 64)),
        ("two_conv", "B-F3", "two conv layers, 2x2 max-pool",
         conv_net("two_conv", "adamw", 1e-3, two_conv_epochs, 1000)),
        ("two_conv_l2", "B-F3", "two conv layers, 2x2 max-pool, L2 reading",
         conv_net("two_conv", "adam", 1e-3, two_conv_epochs, 1000)),
        ("cnn_lr0.001", "B-F4", "CIFAR-10 CNN, lr 0.001", cnn(1e-3)),
        ("cnn_lr0.1", "B-F5", "CIFAR-10 CNN, lr 0.1", cnn(0.1, epochs=cifar_lr_epochs)),
        ("cnn_lr1", "B-F5", "CIFAR-10 CNN, lr 1", cnn(1.0, epochs=cifar_lr_epochs)),
        ("cnn_pool", "B-F6", "CIFAR-10 CNN with max-pooling", cnn(1e-3, pool=True)),
        ("cnn_pool_aug", "B-F7", "CIFAR-10 CNN with max-pooling and augmentation",
         cnn(1e-3, pool=True, augment=True, epochs=cifar_aug_epochs)),
    ]  # fmt: skip
    return [Baseline(*run) for run in runs]


def accuracy_at_epoch(history: pd.DataFrame, epoch: int | None) -> float:
    """Test accuracy after `epoch` epochs, NaN when the run is shorter or no epoch is given."""
    if epoch is None:
        return math.nan
    row = history.loc[history["epoch"] == epoch, "test_acc"]
    return float(row.iloc[0]) if len(row) else math.nan


def baseline_table(runs: list[Baseline], results: Mapping[str, TrainResult]) -> pd.DataFrame:
    """Item B-T1: one row per run, our test accuracy beside the draft's."""
    rows = []
    for run in runs:
        res = results[run.key]
        rows.append(
            {
                "run": run.key,
                "item": run.item,
                "model": run.title,
                "data set": res.dataset_label,
                "parameters": res.n_parameters,
                "optimiser": run.optimiser,
                "batch": run.config.batch_size,
                "epochs": run.config.epochs,
                "test acc (ours)": res.test["acc"],
                "test acc at the draft's epoch (ours)": accuracy_at_epoch(res.history, run.draft_epoch),
                "draft's test acc": run.draft_acc if run.draft_acc is not None else math.nan,
                "draft's report": f"{run.draft_note} (draft {run.draft})",
                "train seconds": float(res.history["seconds"].sum()),
            }
        )
    return pd.DataFrame(rows).set_index("run")


def glue_name(key: str) -> str:
    """The glue name of a run's test accuracy: `acc_<key>` without dots (`acc_cnn_lr0001`)."""
    return "acc_" + key.replace(".", "")


@dataclass
class ItemCurves:
    """The learning curves of one figure item: each run's history by its title, the splits to
    draw, the draft's numbers to mark (title -> (epoch, accuracy)), the title and the caption."""

    histories: dict[str, pd.DataFrame]
    splits: tuple[str, ...]
    marks: dict[str, tuple[int, float]]
    title: str
    caption: str


def item_curves(
    item: str, runs: list[Baseline], results: Mapping[str, TrainResult], profile: str
) -> ItemCurves:
    """What the figure of item `item` shows: every run that belongs to it (`book.plots.item_curves`
    draws it)."""
    chosen = [r for r in runs if r.item == item]
    if not chosen:
        raise ValueError(f"item={item!r} has no baseline run; allowed: {sorted({r.item for r in runs})}")
    if item == "B-F6":  # the pooling figure compares against the strided network
        chosen = [r for r in runs if r.key == "cnn_lr0.001"] + chosen
    if item == "B-F7":  # the augmentation figure compares against the same network without it
        chosen = [r for r in runs if r.key == "cnn_pool"] + chosen
    label = results[chosen[0].key].dataset_label
    cifar = chosen[0].config.dataset == "cifar10"
    marks, marked = {}, set()
    for r in chosen:  # each number the draft reports is drawn once, on the first run it belongs to
        if r.draft_acc is not None and (r.draft_acc, r.draft_epoch) not in marked:
            marks[r.title] = (r.draft_epoch or len(results[r.key].history), r.draft_acc)
            marked.add((r.draft_acc, r.draft_epoch))
    runs_text = "; ".join(
        f"{r.title} ({r.optimiser}, batch {r.config.batch_size}, {len(results[r.key].history)} epochs)"
        for r in chosen
    )
    draft_text = "; ".join(f"{r.title}: {r.draft_note}" for r in chosen if r.item == item)
    caption = (
        f"Loss and accuracy per epoch on {label}, profile `{profile}`: {runs_text}. "
        f"Draft {chosen[-1].draft} reports: {draft_text}{' (stars)' if marks else ''}."
    )
    return ItemCurves(
        {r.title: results[r.key].history for r in chosen},
        ("train", "test") if cifar else ("train", "val", "test"),
        marks,
        f"{item}: {' vs '.join(r.title for r in chosen)}",
        caption,
    )
