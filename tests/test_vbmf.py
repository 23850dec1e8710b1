"""Empirical variational Bayes matrix factorisation (`compress.vbmf`): the rank of noisy low-rank
matrices, and none of pure noise."""

import torch

from netshrink.compress.vbmf import evbmf_rank


def test_evbmf_finds_the_rank_of_a_noisy_low_rank_matrix():
    g = torch.Generator().manual_seed(0)
    for rows, cols, rank in [(64, 200, 5), (200, 64, 10), (30, 30, 4)]:
        y = torch.randn(rows, rank, generator=g) @ torch.randn(rank, cols, generator=g)
        assert evbmf_rank(y + 0.1 * torch.randn(rows, cols, generator=g)) == rank
        assert evbmf_rank(0.1 * torch.randn(rows, cols, generator=g)) == 0
