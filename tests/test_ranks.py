"""Ranks (`compress.ranks`): rank rules (energy, VBMF), parameter formulas and budgets, rank types."""

import numpy as np
import pytest
import torch
from torch import nn

from netshrink import models
from netshrink.compress import decompose


def test_rank_rules_vbmf_and_energy():
    g = torch.Generator().manual_seed(0)
    w = torch.einsum("tr,sr,yx->tsyx", torch.randn(32, 5, generator=g), torch.randn(16, 5, generator=g),
                     torch.ones(3, 3)) + 0.01 * torch.randn(32, 16, 3, 3, generator=g)  # fmt: skip
    conv = nn.Conv2d(16, 32, 3)
    conv.weight.data = w
    plan = decompose.resolve_plan(nn.Sequential(conv), {"0": ["tucker2", "vbmf"]})
    assert plan == {"0": {"method": "tucker2", "rank": [5, 5]}}
    q, _ = torch.linalg.qr(torch.randn(36, 4, generator=g, dtype=torch.float64))
    energy = torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=torch.float64)  # squares 16, 4, 1, 1 of 22
    w = (torch.eye(4, dtype=torch.float64) * energy) @ q.T  # mode-0 unfolding with those singular values
    w = w.reshape(4, 4, 3, 3)
    assert [decompose.select_rank(w, 0, f) for f in (0.5, 0.8, 0.95, 0.99)] == [1, 2, 3, 4]


@pytest.mark.parametrize("method", decompose.CONV_METHODS)
def test_parameter_formula_matches_the_built_layer_and_the_budget_is_kept(method):
    conv = nn.Conv2d(32, 48, 3, padding=1)
    options = {"n_blocks": 2} if method == "btd" else {}
    budget = models.count_parameters(conv) // 4
    rank = decompose.rank_for_budget(conv, method, budget, **options)
    layer = decompose.decompose_layer(conv, method, rank, **options)
    assert (
        models.count_parameters(layer) == decompose.layer_parameters(conv, method, rank, **options) <= budget
    )


def test_numpy_integer_ranks_are_ranks():
    conv = nn.Conv2d(6, 8, 3)
    a = decompose.decompose_layer(conv, "tucker2", [np.int64(3), np.int64(4)])
    b = decompose.decompose_layer(conv, "tucker2", [3, 4])
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert decompose.decompose_layer(conv, "tucker1", np.int32(5))[1].out_channels == 8
    with pytest.raises(ValueError, match=r"out of range; allowed: integers 1..8"):
        decompose.decompose_layer(conv, "tucker1", np.int64(9))
