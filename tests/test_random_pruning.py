"""The Random node pruning chapter's experiment functions, on tiny inputs."""

import pytest
import torch

from netshrink import models
from netshrink.compress import prune
from netshrink.experiments import random_pruning as rp


def test_timing_reports_both_methods_and_agreement():
    torch.manual_seed(0)
    mlp = models.MLP(in_features=20, hidden=(16,)).eval()
    g = torch.Generator().manual_seed(0)
    loader = [(torch.randn(40, 20, generator=g), torch.randint(0, 10, (40,), generator=g)) for _ in range(3)]
    masks = prune.random_node_masks(16, 3, 8, generator=torch.Generator().manual_seed(5))
    table = rp.time_mask_evaluation(mlp, "hidden.0", masks, loader, repeats=1)
    assert set(table.index) == {"batched", "per-mask loop"}
    assert table["agree"].all() and (table["seconds"] > 0).all()
    assert table.loc["per-mask loop", "speedup"] == pytest.approx(1.0)
    assert table.loc["batched", "masks"] == 8
