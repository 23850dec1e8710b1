"""Figures: each function takes tables and returns a matplotlib Figure (no files)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

SPLIT_STYLE = {"train": "-", "val": "--", "test": ":"}


def learning_curves(
    histories: Mapping[str, pd.DataFrame],
    title: str = "",
    splits: tuple[str, ...] = ("train", "val", "test"),
    seed_marks: Mapping[str, tuple[float, float]] | None = None,
) -> plt.Figure:
    """Loss (left) and accuracy (right) per epoch, one colour per run, one line style per split.

    `histories` maps a run's label to its history table (columns `epoch`, `<split>_loss`,
    `<split>_acc`). `seed_marks` maps a label to an (epoch, accuracy) the seed reported,
    drawn as a star on the accuracy panel.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, hist) in enumerate(histories.items()):
        colour = colours[i % len(colours)]
        for split in splits:
            if f"{split}_loss" not in hist:
                continue
            name = f"{label}, {split}" if len(histories) > 1 else split
            ax_loss.plot(
                hist["epoch"],
                hist[f"{split}_loss"],
                SPLIT_STYLE[split],
                color=colour,
                marker="o",
                ms=3,
                label=name,
            )
            ax_acc.plot(
                hist["epoch"],
                100 * hist[f"{split}_acc"],
                SPLIT_STYLE[split],
                color=colour,
                marker="o",
                ms=3,
                label=name,
            )
        if seed_marks and label in seed_marks:
            epoch, acc = seed_marks[label]
            ax_acc.plot(
                [epoch],
                [100 * acc],
                "*",
                color=colour,
                ms=14,
                mec="black",
                label=f"{label}, seed's report" if len(histories) > 1 else "seed's report",
            )
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    handles, labels = ax_acc.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(histories), 3),
        fontsize="small",
        frameon=False,
    )
    return fig


def trial_distributions(
    trials: pd.DataFrame,
    value: str,
    ylabel: str,
    title: str = "",
    seed_means: Mapping[int, float] | None = None,
) -> plt.Figure:
    """Box plots of `value` against `n` (the nodes removed), one box per n over all trials,
    with the seed's mean per n as red diamonds (where given). trials: columns `n`, `value`."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 4.5))
    order = sorted(trials["n"].unique())
    sns.boxplot(data=trials, x="n", y=value, order=order, ax=ax, color="#9ecae1", fliersize=2, linewidth=1)
    means = trials.groupby("n")[value].mean().reindex(order)
    ax.plot(range(len(order)), means.to_numpy(), "o", color="black", ms=5, label="our mean")
    if seed_means:
        xs = [i for i, n in enumerate(order) if n in seed_means]
        ax.plot(xs, [seed_means[order[i]] for i in xs], "D", color="tab:red", ms=6, label="seed's mean")
    ax.set(xlabel="nodes removed at random (n)", ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def shrink_curves(steps: pd.DataFrame, n_nodes: int, title: str = "") -> plt.Figure:
    """Algorithm 2 along its steps: validation accuracy (left) and nodes left (right), mean over
    runs with a band of one standard deviation, one colour per n. steps: columns `n`, `run`,
    `step`, `removed`, `val_acc`."""
    fig, (ax_acc, ax_left) = plt.subplots(1, 2, figsize=(11, 4))
    steps = steps.assign(left=n_nodes - steps["removed"], val_acc=100 * steps["val_acc"])
    for n, group in steps.groupby("n"):
        agg = group.groupby("step")[["val_acc", "left"]].agg(["mean", "std"]).fillna(0)
        for ax, col in ((ax_acc, "val_acc"), (ax_left, "left")):
            mean, sd = agg[(col, "mean")], agg[(col, "std")]
            (line,) = ax.plot(agg.index, mean, label=f"n = {n}")
            ax.fill_between(agg.index, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
    ax_acc.set(xlabel="step", ylabel="validation accuracy (%)", title="accuracy of the kept model")
    ax_left.set(xlabel="step", ylabel="hidden nodes left", title="nodes left")
    ax_left.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
