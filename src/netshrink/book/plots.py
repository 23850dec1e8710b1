"""Figures: each function takes tables and returns a matplotlib Figure (no files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from matplotlib.ticker import MaxNLocator, ScalarFormatter

SPLIT_STYLE = {"train": "-", "val": "--", "test": ":"}


def learning_curves(
    histories: Mapping[str, pd.DataFrame],
    title: str = "",
    splits: tuple[str, ...] = ("train", "val", "test"),
    draft_marks: Mapping[str, tuple[float, float]] | None = None,
) -> plt.Figure:
    """Loss (left) and accuracy (right) per epoch, one colour per run, one line style per split.

    `histories` maps a run's label to its history table (columns `epoch`, `<split>_loss`,
    `<split>_acc`). `draft_marks` maps a label to an (epoch, accuracy) the draft reported,
    drawn as a star on the accuracy panel.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    many = len(histories) > 1
    for i, (label, hist) in enumerate(histories.items()):
        colour = colours[i % len(colours)]
        for split in (s for s in splits if f"{s}_loss" in hist):
            name = f"{label}, {split}" if many else split
            style = {"color": colour, "marker": "o", "ms": 3, "label": name}
            ax_loss.plot(hist["epoch"], hist[f"{split}_loss"], SPLIT_STYLE[split], **style)
            ax_acc.plot(hist["epoch"], 100 * hist[f"{split}_acc"], SPLIT_STYLE[split], **style)
        if draft_marks and label in draft_marks:
            epoch, acc = draft_marks[label]
            mark = f"{label}, draft's report" if many else "draft's report"
            ax_acc.plot([epoch], [100 * acc], "*", color=colour, ms=14, mec="black", label=mark)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    handles, labels = ax_acc.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(histories), 3),
               fontsize="small", frameon=False)  # fmt: skip
    return fig


def trial_distributions(
    trials: pd.DataFrame,
    value: str,
    ylabel: str,
    title: str = "",
    draft_means: Mapping[int, float] | None = None,
) -> plt.Figure:
    """Box plots of `value` against `n` (the nodes removed), one box per n over all trials,
    with the draft's mean per n as red diamonds (where given). trials: columns `n`, `value`."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 4.5))
    order = sorted(trials["n"].unique())
    sns.boxplot(data=trials, x="n", y=value, order=order, ax=ax, color="#9ecae1", fliersize=2, linewidth=1)
    means = trials.groupby("n")[value].mean().reindex(order)
    ax.plot(range(len(order)), means.to_numpy(), "o", color="black", ms=5, label="our mean")
    if draft_means:
        xs = [i for i, n in enumerate(order) if n in draft_means]
        ax.plot(xs, [draft_means[order[i]] for i in xs], "D", color="tab:red", ms=6, label="draft's mean")
    ax.set(xlabel="nodes removed at random (n)", ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def shrink_curves(steps: pd.DataFrame, n_nodes: int, title: str = "", data: str = "validation") -> plt.Figure:
    """Algorithm 2 along its steps: the kept model's accuracy on the `data` that decides (left)
    and nodes left (right), mean over runs with a band of one standard deviation, one colour
    per n. steps: columns `n`, `run`, `step`, `removed`, `acc`."""
    fig, (ax_acc, ax_left) = plt.subplots(1, 2, figsize=(11, 4))
    steps = steps.assign(left=n_nodes - steps["removed"], acc=100 * steps["acc"])
    for n, group in steps.groupby("n"):
        agg = group.groupby("step")[["acc", "left"]].agg(["mean", "std"]).fillna(0)
        for ax, col in ((ax_acc, "acc"), (ax_left, "left")):
            mean, sd = agg[(col, "mean")], agg[(col, "std")]
            (line,) = ax.plot(agg.index, mean, label=f"n = {n}")
            ax.fill_between(agg.index, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
    ax_acc.set(xlabel="step", ylabel=f"{data} accuracy (%)", title="accuracy of the kept model")
    ax_left.set(xlabel="step", ylabel="hidden nodes left", title="nodes left")
    ax_left.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


CLASS_COLOURS = {"important": "tab:blue", "zero": "tab:gray", "worse": "tab:red"}


def sorted_importance(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """I-F1: the loss change (left) and accuracy change (right) of removing each node, nodes
    sorted by loss change, coloured by class, with the Taylor estimate as dots on the left.
    table: one network's rows of `node_importance.importance_table`."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    t = table.sort_values("loss_change", ascending=False).reset_index(drop=True)
    colours = t["class"].map(CLASS_COLOURS)
    ax_loss.bar(t.index, t["loss_change"], color=colours, width=1.0)
    ax_loss.plot(t.index, t["taylor"], ".", color="black", ms=3, label="Taylor estimate")
    ax_acc.bar(t.index, 100 * t["acc_change"], color=colours, width=1.0)
    ax_loss.set_yscale("symlog", linthresh=1e-4)
    ax_loss.set(xlabel="node, by decreasing importance", ylabel="loss change when removed", title="loss")
    ax_acc.set(xlabel="node, same order", ylabel="accuracy change when removed (points)", title="accuracy")
    for name, colour in CLASS_COLOURS.items():
        ax_loss.bar([0], [0], color=colour, label=f"{name} ({(t['class'] == name).sum()})")
    ax_loss.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def pruning_paths(paths: Mapping[str, pd.DataFrame], title: str = "") -> plt.Figure:
    """I-F2: validation accuracy (left) and loss (right) against the nodes removed, one line per
    strategy (colour) and data set (style). paths: data set -> frame with columns `strategy`,
    `step`, `val_acc`, `val_loss`."""
    import seaborn as sns

    paths = pd.concat([f.assign(**{"data set": name}) for name, f in paths.items()], ignore_index=True)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    p = paths.assign(**{"nodes removed": paths["step"], "val_acc": 100 * paths["val_acc"]})
    for ax, col, label in (
        (axes[0], "val_acc", "validation accuracy (%)"),
        (axes[1], "val_loss", "validation loss"),
    ):
        sns.lineplot(
            data=p, x="nodes removed", y=col, hue="strategy", style="data set", marker="o", ms=3, ax=ax
        )
        ax.set(ylabel=label)
    axes[1].get_legend().remove()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def criteria_curves(curves: Mapping[str, pd.DataFrame], budget: float, title: str = "") -> plt.Figure:
    """I-F6: the validation loss change against the nodes removed in each criterion's order, one
    panel per data set, one line per criterion, the loss budget dashed. curves: data set -> frame
    with columns `criterion`, `removed`, `loss change`."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.2), squeeze=False)
    for ax, (name, frame) in zip(axes[0], curves.items(), strict=True):
        sns.lineplot(data=frame, x="removed", y="loss change", hue="criterion", ax=ax, lw=1.2)
        ax.axhline(budget, color="black", ls="--", lw=0.8, label=f"budget {budget:g}")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set(xlabel="nodes removed, least important first",
               ylabel="validation loss change", title=name)  # fmt: skip
        ax.get_legend().remove()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def importance_by_setting(table: pd.DataFrame, setting: str, title: str = "") -> plt.Figure:
    """I-F3, I-F4: the distribution of the loss change of the nodes of each hidden layer (box
    plots), one colour per setting (e.g. batch size). table: `layer_importance`'s rows."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(10, 4.5))
    sns.boxplot(data=table, x="layer", y="loss_change", hue="setting", ax=ax, fliersize=2, linewidth=1)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set(xlabel="hidden layer", ylabel="loss change when the node is removed", title=title)
    ax.legend(title=setting, fontsize="small")
    fig.tight_layout()
    return fig


def class_accuracy_heatmaps(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """I-F5: per-class test accuracy (%) against the fraction of channels removed, one heatmap
    per layer. table: `class_accuracy_after_pruning`'s rows."""
    import seaborn as sns

    layers = list(dict.fromkeys(table["layer"]))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers) + 1, 4.2), sharey=True, squeeze=False)
    classes = list(dict.fromkeys(table["class"]))
    for i, (ax, layer) in enumerate(zip(axes[0], layers, strict=True)):
        grid = table[table["layer"] == layer].pivot(index="class", columns="fraction removed", values="acc")
        grid = 100 * grid.reindex(classes)
        sns.heatmap(
            grid,
            ax=ax,
            vmin=0,
            vmax=100,
            cmap="viridis",
            annot=True,
            fmt=".0f",
            cbar=i == len(layers) - 1,
            annot_kws={"fontsize": 7},
        )
        ax.set(title=layer, xlabel="fraction of channels removed", ylabel="class" if i == 0 else "")
        ax.set_xticklabels([f"{float(t.get_text()):.2f}" for t in ax.get_xticklabels()])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def digit_grid(
    images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor, class_names: Sequence[str],
    title: str = "", rows: int = 5, cols: int = 10,
) -> plt.Figure:  # fmt: skip
    """D-F1/3/5: test images with the predicted label above each; wrong predictions in red."""
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.05))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i].squeeze(0), cmap="gray_r")
        right = bool(predictions[i] == labels[i])
        ax.set_title(str(class_names[int(predictions[i])]), fontsize=9, color="black" if right else "tab:red")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def loading_histograms(
    loadings: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str],
    title: str = "",
    max_panels: int = 6,
) -> plt.Figure:
    """D-F2/4/6: histogram of each component's loadings (a column of the sample-mode factor A),
    one colour per class."""
    n = min(loadings.shape[1], max_panels)
    frame = pd.DataFrame(loadings[:, :n].numpy(), columns=[f"component {i + 1}" for i in range(n)])
    frame["class"] = [str(class_names[int(c)]) for c in labels]
    cols = min(n, 3)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4 * cols, 3 * ((n + cols - 1) // cols)),
                             squeeze=False)  # fmt: skip
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        sns.histplot(frame, x=f"component {i + 1}", hue="class", element="step", stat="density",
                     common_norm=False, bins=40, ax=ax, legend=i == 0,
                     hue_order=[str(c) for c in class_names])  # fmt: skip
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def lines(
    table: pd.DataFrame, x: str, y: str, hue: str, title: str = "", logy: bool = False,
    reference: float | None = None, reference_label: str = "", percent: bool = False,
) -> plt.Figure:  # fmt: skip
    """One line per value of `hue` (D-F8, D-F9, D-F10), with an optional horizontal reference;
    with `percent`, `y` and `reference` are fractions drawn in percent, the axis marked (%)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    scale = 100 if percent else 1
    sns.lineplot(table.assign(**{y: scale * table[y]}), x=x, y=y, hue=hue, marker="o", ax=ax)
    if percent:
        ax.set_ylabel(f"{y} (%)")
    if reference is not None:
        ax.axhline(scale * reference, color="gray", ls="--", label=reference_label)
    if logy:
        ax.set_yscale("log")
    if table[hue].nunique() > 6:  # many lines: the legend goes beside the plot, not over it
        fig.set_size_inches(9.5, 4.2)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize="small")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def accuracy_against_cost(table: pd.DataFrame, costs: Sequence[str], title: str = "") -> plt.Figure:
    """Test accuracy against each cost column (log scale), one labelled point per row (D-T7, V-F2)."""
    fig, axes = plt.subplots(1, len(costs), figsize=(6 * len(costs), 4.2), squeeze=False)
    for ax, cost in zip(axes[0], costs, strict=True):
        for name, row in table.iterrows():
            ax.plot(row[cost], row["test accuracy (%)"], "o")
            ax.annotate(str(name), (row[cost], row["test accuracy (%)"]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
        ax.set(xlabel=cost, ylabel="test accuracy (%)", xscale="log")
        ax.margins(x=0.25)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def item_curves(curves: Any) -> plt.Figure:
    """The learning curves of a Baselines figure item (an `experiments.baselines.ItemCurves`)."""
    return learning_curves(
        curves.histories, title=curves.title, splits=curves.splits, draft_marks=curves.marks
    )


def input_case_figures(case: Any) -> tuple[plt.Figure, plt.Figure]:
    """The digit grid (first 50 test images, labelled by the MLP on the CP loadings) and the
    histograms of the sample-mode factor's columns by class of an images-as-features case (an
    `experiments.input_decomposition.InputCase`)."""
    test, dec = case.splits.test, case.experiment.classifiers[1]
    grid = digit_grid(test.images[:50], test.labels[:50], dec.predictions[:50], case.splits.classes,
                      f"{case.name}: predicted from {case.rank} CP loadings")  # fmt: skip
    loadings = case.experiment.bases[dec.label].loadings
    hist = loading_histograms(loadings, case.experiment.train_labels, case.splits.classes,
                              f"{case.name}: loadings of the sample-mode factor A")  # fmt: skip
    return grid, hist


def compression_map(
    rows: Sequence[Mapping[str, Any]], drafts: Sequence[tuple[str, float, float, float | None]] = ()
) -> plt.Figure:
    """The glance page's picture of every compressed model: accuracy lost (points) against the
    CPU speedup measured side by side with its original, the parameter ratio as the marker's
    area, one marker and colour per report item (a method as its chapter names it) or per named
    `method` within an item (a library beside the book), and the drafts' own points
    (`published.DRAFT_COMPRESSIONS`) as black crosses, labelled.
    rows: `Report.compression` records."""
    import os

    frame = pd.DataFrame(list(rows))
    frame["method"] = frame["method"].fillna("") if "method" in frame else ""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    markers = "osD^vP*Xhp<>"
    for i, ((item, method), group) in enumerate(frame.groupby(["item", "method"], sort=True)):
        how = method or os.path.commonprefix(list(group["how"])).split(" (")[0]
        how = how.rsplit(":", 1)[0] if ":" in how and not method else how.rstrip(" ,")
        if not how:  # methods named first, as in one table of several decompositions
            how = ", ".join(dict.fromkeys(h.split(" ")[0] for h in group["how"]))
        lost = 100 * (group["base accuracy"] - group["accuracy"])
        ratio = group["parameters"] / group["base parameters"]
        ax.scatter(group["speedup"], lost, s=20 + 180 * ratio, marker=markers[i % len(markers)],
                   alpha=0.75, label=f"{item}: {how[:52]}")  # fmt: skip
    for label, lost, speedup, ratio in drafts:
        ax.scatter([speedup], [lost], s=20 + 180 * (ratio or 0.5), marker="x", color="black")
        ax.annotate(label + ("" if ratio else " (parameters not given)"), (speedup, lost),
                    textcoords="offset points", xytext=(6, 4), fontsize=7)  # fmt: skip
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(1, color="grey", lw=0.6)
    ax.set_xscale("log", base=2)
    low, high = ax.get_xlim()
    ax.set_xticks(
        [t for t in (0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 6, 8, 16) if low <= t <= high], minor=False
    )
    ax.set_xticks([], minor=True)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set(xlabel="CPU speedup, measured beside the original (log scale)",
           ylabel="test accuracy lost (points)")  # fmt: skip
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
              title="marker area: parameters kept", title_fontsize=7)  # fmt: skip
    fig.tight_layout()
    return fig


def accuracy_against_speedup(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """V-F3: `test accuracy` (a fraction, shown in %) against `speedup`, a marker a row, `original` a star."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    for marker, (name, row) in zip("osD^vP" * 4, table.drop(index="original").iterrows(), strict=False):
        ax.plot(row["speedup"], 100 * row["test accuracy"], marker, ms=8, label=str(name))
    base = table.loc["original"]
    ax.plot(base["speedup"], 100 * base["test accuracy"], "*", c="black", ms=12, label="original")
    ax.axhline(100 * base["test accuracy"], color="black", ls="--", lw=0.8)
    ax.set(xlabel="measured CPU speedup over the original", ylabel="test accuracy (%)", title=title,
           xmargin=0.15, ymargin=0.15)  # fmt: skip
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig
