"""Images as features: CP and Tucker loadings of the training images, projection of new images."""

import pytest
import torch

from netshrink.compress import input_features


def low_rank_images(n=60, rank=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b, c = (torch.rand(d, rank, generator=g) for d in (n, 12, 10))
    return torch.einsum("nr,hr,wr->nhw", a, b, c)


@pytest.mark.parametrize("method", input_features.METHODS)
def test_image_decomposition_fits_and_projects_training_images_onto_their_loadings(method):
    images = low_rank_images()
    basis = input_features.decompose_images(images, method, 3)
    assert basis.basis.shape == (3, 120) and basis.loadings.shape == (60, 3)
    assert basis.relative_error < 1e-3, "a rank-3 tensor is fitted exactly at rank 3"
    projected = input_features.project(images.unsqueeze(1), basis)
    assert (projected - basis.loadings).norm() / basis.loadings.norm() < 1e-2


def test_image_decomposition_refuses_bad_input():
    images = low_rank_images()
    with pytest.raises(ValueError, match=r"method='pca' is not known; allowed values: cp, tucker"):
        input_features.decompose_images(images, "pca", 3)
    with pytest.raises(ValueError, match=r"rank=0 is out of range; allowed: integers 1..60"):
        input_features.decompose_images(images, "cp", 0)
    with pytest.raises(ValueError, match=r"images have shape \(60, 120\)"):
        input_features.decompose_images(images.flatten(1), "cp", 3)


def test_standardised_training_features_have_zero_mean_and_unit_deviation():
    train_x, test_x = torch.randn(100, 4) * 0.01 + 5, torch.randn(20, 4)
    a, b = input_features.standardise(train_x, test_x)
    assert torch.allclose(a.mean(0), torch.zeros(4), atol=1e-4) and torch.allclose(a.std(0), torch.ones(4))
    assert b.shape == test_x.shape
