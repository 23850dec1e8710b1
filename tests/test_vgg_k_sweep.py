"""The course report's k sweep on the VGG-16 base (experiments.vgg_k_sweep): untuned Tucker-2 at
ranks k/8, drops from our original beside the report's log at the same k."""

import types

import pandas as pd
import pytest
import torch

from netshrink import data, models, published, train
from netshrink.experiments import vgg_k_sweep as vk


def _base():
    """A tiny VGG-16 (untrained, batch norm in eval mode) and a small test loader."""
    torch.manual_seed(0)
    model = models.vgg16(width=0.0625).eval()
    images = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    loader = data.make_loader(data.ImageDataset(images, labels), 8)
    return types.SimpleNamespace(model=model, test=train.evaluate(model, loader), key="k"), loader, images


def test_full_rank_keeps_the_original_and_the_report_is_read_from_its_log():
    base, loader, images = _base()
    drops = vk.k_drops(base, loader, [2, 4, 8], images=images[:4], batch_size=4, repeats=1)
    table = drops.table
    assert list(table.index) == ["original", "k = 2", "k = 4", "k = 8"]
    assert table.loc["k = 8", "test accuracy"] == pytest.approx(table.loc["original", "test accuracy"])
    assert table.loc["k = 8", "accuracy lost"] == pytest.approx(0, abs=1e-9)
    assert (
        table.loc["k = 2", "parameters"]
        < table.loc["k = 4", "parameters"]
        < table.loc["original", "parameters"]
    )
    assert table.loc["k = 4", "report's test accuracy"] == published.CIFAR_K_LOG[4][0] == 0.8459
    assert table.loc["k = 4", "report's accuracy lost"] == pytest.approx(0.8994 - 0.8459)
    assert table.loc["original", "report's accuracy lost"] == 0
    assert sorted(drops.plot["network"].unique()) == ["ours (VGG-16 base)", "the report's (its log)"]
    assert len(drops.plot) == 6 and drops.plot["accuracy lost"].notna().all()
    found = vk.k_drops_findings(drops)
    row = found.comparisons[0]
    assert row["quantity"] == "VGG-16 base: accuracy lost at k = 4 from its own original, no fine-tuning"
    assert (row["ours"], row["draft"]) == (table.loc["k = 4", "accuracy lost"], pytest.approx(0.0535))
    assert found.glue["vgg_k_sentence"].startswith("Against the report's log, the VGG-16 base loses ")


def test_the_sentence_follows_the_numbers():
    table = pd.DataFrame(
        {"accuracy lost": [0.0, 0.30, 0.02, 0.0], "report's accuracy lost": [0.0, 0.39, 0.0535, 0.0]},
        index=["original", "k = 2", "k = 4", "k = 8"],
    )
    assert vk._sentence(table) == (
        "Against the report's log, the VGG-16 base loses less at k = 2, 4; within half a point at k = 8 "
        "(untuned against untuned, one run each, so neither spread is known: half a point either way is our "
        "threshold for no difference, not a measured one)."
    )


@pytest.mark.parametrize("ks", [[], [0, 4], [9]])
def test_a_k_the_report_has_not_is_refused(ks):
    base, loader, images = _base()
    with pytest.raises(ValueError, match="each k must be one of the report's, 1..8"):
        vk.k_drops(base, loader, ks, images=images[:4], batch_size=4, repeats=1)
