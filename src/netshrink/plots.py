"""Figures: each function takes tables and returns a matplotlib Figure (no files)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd

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
    ax_acc.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
