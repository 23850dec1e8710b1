"""The drafts' and papers' numbers (`netshrink.published`) agree with what they describe: the
networks the drafts name have the printed parameter counts, the statistics tables are internally
consistent (min <= quartiles <= max), and every number is tied to a document."""

import pandas as pd
import pytest

from netshrink import models, published
from netshrink.compress import decompose


def test_the_week6_network_has_the_parameters_draft_002_prints():
    assert models.count_parameters(models.LeNet()) == published.LENET["parameters"][0] == 120_382


def test_every_baseline_names_a_document_and_a_plausible_accuracy():
    for run, (document, acc, epoch, words) in published.BASELINES.items():
        assert document in published.DOCUMENTS, run
        assert acc is None or (0.1 < acc < 1 and f"{100 * acc:g}" in words), run
        assert epoch is None or str(epoch) in words, run


@pytest.mark.parametrize("item", sorted(published.RANDOM_PRUNING_TABLES))
def test_the_random_pruning_tables_are_ordered_statistics(item):
    table = published.RANDOM_PRUNING_TABLES[item]
    assert list(table.index) == ["mean", "std", "min", "25%", "50%", "75%", "max"]
    assert list(table.columns) in (list(published.N_VALUES), list(published.SHRINK_N_VALUES))
    ordered = table.loc[["min", "25%", "50%", "75%", "max"]]
    assert (ordered.diff().iloc[1:] >= 0).all().all(), "quartiles rise from min to max"
    assert ((table.loc["mean"] >= table.loc["min"]) & (table.loc["mean"] <= table.loc["max"])).all()
    assert (table.loc["std"] >= 0).all()


def test_the_week6_plan_builds_the_printed_network_except_the_capped_rank():
    net = decompose.decompose_model(models.LeNet(), published.LENET_PLAN)
    assert [m.out_channels for m in net.conv2] == [8, 4, 32]
    assert "in_features=800, out_features=40" in published.LENET_LISTING
    assert [m.out_features for m in net.l1] == [40, 120, 120]  # the listing's 200 capped at l1's 120


def test_the_vgg_rows_are_the_papers_error_rates():
    table = published.VGG_CIFAR10
    assert isinstance(table, pd.DataFrame) and table["test accuracy (%)"].between(93, 94).all()
    assert table.loc["Li et al. 2017, VGG-16 (their baseline)", "test accuracy (%)"] == 100 - 6.75


def test_the_drafts_algorithm_2_tables_fit_only_20_runs_of_0_or_8_nodes_at_n_8():
    import math

    for item in ("R-T3", "R-T6"):
        column = published.RANDOM_PRUNING_TABLES[item][8]
        fits = []
        for runs in range(2, 201):
            k = column["mean"] * runs / 8  # runs that removed 8 nodes; the rest removed 0
            if abs(k - round(k)) > 1e-9:
                continue
            k = round(k)
            sd = math.sqrt((k * (8 - column["mean"]) ** 2 + (runs - k) * column["mean"] ** 2) / (runs - 1))
            if abs(sd - column["std"]) < 5e-5:
                fits.append(runs)
        assert fits == [published.ALG2_RUNS] == [20], item
