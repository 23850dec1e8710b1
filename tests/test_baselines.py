"""The Baselines chapter's runs, table and figures, with the drafts' numbers beside ours."""

import math

import pandas as pd
import pytest
import torch
from conftest import synthetic_batches, trained_result

from netshrink import models, published
from netshrink.book import plots
from netshrink.experiments import baselines as bl


def test_the_ten_runs_carry_the_drafts_numbers():
    runs = bl.baseline_runs(seed=3, mlp_epochs=2, cifar_aug_epochs=7)
    assert [r.key for r in runs] == list(published.BASELINES)
    assert {r.item for r in runs} == {f"B-F{i}" for i in range(1, 8)}
    by_key = {r.key: r for r in runs}
    assert by_key["two_conv"].draft == "000" and by_key["two_conv"].draft_acc == 0.971
    assert by_key["cnn_pool_aug"].draft_epoch == 50 and by_key["cnn_pool_aug"].config.epochs == 7
    assert by_key["cnn_pool_aug"].config.data_kwargs["augment"] is True
    assert all(r.config.seed == 3 for r in runs) and by_key["mlp"].config.epochs == 2
    assert by_key["one_conv"].optimiser == "AdamW lr 0.0001, weight decay 0.1"
    assert by_key["one_conv_l2"].optimiser == "Adam lr 0.0001, L2 penalty 0.1"


def test_accuracy_at_epoch_and_glue_names():
    history = pd.DataFrame({"epoch": [1, 2, 3], "test_acc": [0.5, 0.6, 0.7]})
    assert bl.accuracy_at_epoch(history, 2) == 0.6
    assert math.isnan(bl.accuracy_at_epoch(history, 10)) and math.isnan(bl.accuracy_at_epoch(history, None))
    assert bl.glue_name("cnn_lr0.001") == "acc_cnn_lr0001"


def test_table_and_figures_set_the_drafts_report_beside_ours():
    runs = bl.baseline_runs()
    torch.manual_seed(0)
    result = trained_result(models.MLP(in_features=20, hidden=(8,)), synthetic_batches(), label="tiny")
    results = {r.key: result for r in runs}
    table = bl.baseline_table(runs, results)
    assert list(table.index) == [r.key for r in runs]
    assert table.loc["cnn_pool", "draft's test acc"] == 0.60 and math.isnan(
        table.loc["mlp", "draft's test acc"]
    )
    assert table.loc["cnn_pool", "draft's report"] == "> 60 % at epoch 10 (draft 003)"
    assert table.loc["mlp", "test acc (ours)"] == result.test["acc"]
    curves = bl.item_curves("B-F6", runs, results, "smoke")
    caption = curves.caption
    assert "Draft 003 reports: CIFAR-10 CNN with max-pooling: > 60 % at epoch 10 (stars)." in caption
    assert list(curves.histories) == ["CIFAR-10 CNN, lr 0.001", "CIFAR-10 CNN with max-pooling"]
    assert curves.splits == ("train", "test") and "CIFAR-10 CNN with max-pooling" in curves.marks
    assert "CIFAR-10 CNN, lr 0.001" in caption and len(plots.item_curves(curves).axes) >= 2
    with pytest.raises(ValueError, match="item='B-F9' has no baseline run"):
        bl.item_curves("B-F9", runs, results, "smoke")
