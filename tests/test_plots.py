"""Every figure of the book, drawn from tiny tables: the panels, lines and marks it promises."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from netshrink.book import plots


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def history(shift=0.0):
    epochs = [1, 2, 3]
    return pd.DataFrame(
        {
            "epoch": epochs,
            **{
                f"{s}_{m}": [0.5 + shift + 0.1 * e for e in epochs]
                for s in ("train", "val", "test")
                for m in ("loss", "acc")
            },
        }
    )


def test_learning_curves_draw_every_run_and_split_and_the_drafts_star():
    fig = plots.learning_curves({"a": history(), "b": history(0.1)}, "t", draft_marks={"a": (2, 0.9)})
    loss, acc = fig.axes
    assert len(loss.lines) == 2 * 3
    star = [line for line in acc.lines if line.get_marker() == "*"]
    assert len(star) == 1 and star[0].get_xdata()[0] == 2 and star[0].get_ydata()[0] == pytest.approx(90)


def test_trial_distributions_put_the_drafts_means_as_diamonds():
    trials = pd.DataFrame({"n": [1, 1, 8, 8], "acc": [0.9, 0.8, 0.5, 0.6]})
    fig = plots.trial_distributions(trials, "acc", "accuracy", "t", draft_means={1: 0.95, 64: 0.5})
    diamonds = [line for line in fig.axes[0].lines if line.get_marker() == "D"]
    assert len(diamonds) == 1 and list(diamonds[0].get_ydata()) == [0.95]  # n = 64 was not run


def test_shrink_curves_and_pruning_paths():
    steps = pd.DataFrame(
        {
            "n": [2] * 4,
            "run": [0, 0, 1, 1],
            "step": [0, 1, 0, 1],
            "removed": [0, 2, 0, 4],
            "acc": [0.9, 0.85, 0.9, 0.8],
        }
    )
    fig = plots.shrink_curves(steps, 16, data="training")
    left = fig.axes[1].lines[0]
    assert list(left.get_ydata()) == [16, 13]  # nodes left, mean over runs
    assert list(fig.axes[0].lines[0].get_ydata()) == pytest.approx([90, 82.5])
    assert fig.axes[0].get_ylabel() == "training accuracy (%)"
    path = pd.DataFrame(
        {"strategy": ["greedy"] * 2, "step": [0, 1], "val_acc": [0.9, 0.91], "val_loss": [0.3, 0.2]}
    )
    fig = plots.pruning_paths({"MNIST": path, "Fashion": path}, "t")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 2


def test_importance_figures():
    table = pd.DataFrame(
        {
            "node": range(4),
            "loss_change": [0.1, -0.01, 0.0, 0.3],
            "acc_change": [-0.1, 0, 0, -0.2],
            "class": ["important", "worse", "zero", "important"],
            "taylor": [0.1, 0, 0, 0.2],
        }
    )
    fig = plots.sorted_importance(table, "t")
    bars = [bar.get_height() for bar in fig.axes[0].containers[0]]
    assert len(fig.axes) == 2 and bars == [0.3, 0.1, 0.0, -0.01]  # sorted by loss change
    layers = pd.DataFrame(
        {
            "setting": ["16"] * 4 + ["64"] * 4,
            "layer": ["h0", "h1"] * 4,
            "loss_change": np.linspace(-0.1, 0.1, 8),
        }
    )
    assert fig is not plots.importance_by_setting(layers, "batch size", "t")
    per_class = pd.DataFrame(
        [
            {"layer": layer, "fraction removed": f, "class": c, "acc": 0.5}
            for layer in ("conv1", "fc")
            for f in (0.0, 0.5)
            for c in "ab"
        ]
    )
    assert len([ax for ax in plots.class_accuracy_heatmaps(per_class).axes if ax.get_title()]) == 2


def test_images_loadings_lines_and_costs():
    images, labels = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    fig = plots.digit_grid(images, labels, torch.tensor([0, 1, 0, 0, 1, 2]), ["a", "b", "c"], rows=2, cols=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert (
        len(titles) == 6
        and titles[2] == "a"
        and fig.axes[2].title.get_color() != fig.axes[0].title.get_color()
    )
    fig = plots.loading_histograms(torch.randn(6, 8), labels, ["a", "b", "c"], max_panels=3)
    assert len([ax for ax in fig.axes if ax.has_data()]) == 3
    table = pd.DataFrame(
        {"rank": [1, 2, 1, 2], "error": [0.5, 0.2, 0.6, 0.1], "varied": ["R1", "R1", "R2", "R2"]}
    )
    fig = plots.lines(table, "rank", "error", "varied", reference=0.3, reference_label="ref")
    assert any(line.get_label() == "ref" for line in fig.axes[0].lines)
    fig = plots.lines(table, "rank", "error", "varied", reference=0.3, reference_label="ref", percent=True)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "error (%)" and max(
        y for line in ax.lines for y in line.get_ydata()
    ) == pytest.approx(60)
    assert next(line for line in ax.lines if line.get_label() == "ref").get_ydata()[0] == pytest.approx(30)
    assert table["error"].max() == 0.6  # the data is not touched
    cost = pd.DataFrame(
        {"parameters": [100, 50], "ms": [2.0, 1.0], "test accuracy (%)": [90.0, 88.0]},
        index=["original", "small"],
    )
    fig = plots.accuracy_against_cost(cost, ["parameters", "ms"])
    assert len(fig.axes) == 2


def test_criteria_curves_draws_one_panel_per_data_set_and_the_budget():
    frame = pd.DataFrame(
        {
            "criterion": ["x"] * 3 + ["y"] * 3,
            "removed": [1, 2, 3] * 2,
            "loss change": np.linspace(-0.01, 0.2, 6),
        }
    )
    fig = plots.criteria_curves({"MNIST": frame, "Fashion-MNIST": frame}, 0.01)
    assert [ax.get_title() for ax in fig.axes] == ["MNIST", "Fashion-MNIST"]
    assert all(any(line.get_linestyle() == "--" for line in ax.get_lines()) for ax in fig.axes)
    plt.close(fig)


def test_compression_map_has_one_marker_set_per_item_or_named_method_and_the_drafts_points():
    row = {
        "how": "nodes removed (x)",
        "accuracy": 0.9,
        "base accuracy": 0.95,
        "parameters": 50,
        "base parameters": 100,
    }
    rows = [
        {**row, "item": "I-T2", "speedup": 1.2},
        {**row, "item": "I-T2", "speedup": 1.5},
        {**row, "item": "D-T7", "speedup": 2.0, "how": "cp of a"},
        {**row, "item": "V-T3", "speedup": 2.5, "method": "ours: x (y)"},
        {**row, "item": "V-T3", "speedup": 3.0, "method": "Torch-Pruning, L1"},
    ]
    fig = plots.compression_map(
        rows, [("draft 002: LeNet", 0.05, 0.93, 0.5), ("draft 003: k = 4", 2.0, 1.3, None)]
    )
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["D-T7: cp of a", "I-T2: nodes removed", "V-T3: Torch-Pruning, L1", "V-T3: ours: x (y)"]
    assert [t.get_text() for t in ax.texts] == ["draft 002: LeNet", "draft 003: k = 4 (parameters not given)"]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(map(tuple, offsets.round(2))) == sorted(
        [(1.2, 5.0), (1.5, 5.0), (2.0, 5.0), (2.5, 5.0), (3.0, 5.0), (0.93, 0.05), (1.3, 2.0)]
    )
    plt.close(fig)
