import pytest
import torch

from netshrink import models

DRAFT_002_NET = """Net(
  (conv1): Conv2d(1, 16, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
  (conv2): Conv2d(16, 32, kernel_size=(5, 5), stride=(1, 1))
  (pool): AvgPool2d(kernel_size=2, stride=2, padding=0)
  (dropout1): Dropout(p=0.2, inplace=False)
  (dropout2): Dropout2d(p=0.2, inplace=False)
  (l1): Linear(in_features=800, out_features=120, bias=True)
  (l2): Linear(in_features=120, out_features=84, bias=True)
  (l_out): Linear(in_features=84, out_features=10, bias=True)
)"""

CASES = [
    ("mlp", {}, (1, 28, 28), 101_770),
    ("mlp", {"hidden": (512, 512), "dropout": 0.4}, (1, 28, 28), 669_706),
    ("mlp", {"hidden": (128, 128, 128)}, (1, 28, 28), None),
    ("one_conv", {}, (1, 28, 28), None),
    ("two_conv", {}, (1, 28, 28), None),
    ("lenet", {}, (1, 28, 28), 120_382),
    ("cifar_cnn", {}, (3, 32, 32), None),
    ("cifar_cnn", {"pool": True}, (3, 32, 32), None),
    ("conv4", {}, (1, 28, 28), None),
    ("vgg16", {"width": 0.25}, (3, 32, 32), None),
]


@pytest.mark.parametrize(("name", "kwargs", "shape", "n_params"), CASES)
def test_models_map_images_to_logits(name, kwargs, shape, n_params):
    torch.manual_seed(0)
    model = models.build_model(name, **kwargs).eval()
    out = model(torch.rand(4, *shape))
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    if n_params is not None:
        assert models.count_parameters(model) == n_params


def test_lenet_is_draft_002_net_layer_for_layer():
    listing = repr(models.LeNet()).replace("LeNet(", "Net(", 1)
    assert listing.replace("AvgPool2x2(", "AvgPool2d(") == DRAFT_002_NET  # the same pooling, computed faster
    assert models.count_parameters(models.LeNet()) == 120_382  # printed in the week 6 slides


def test_pooling_variant_has_the_same_parameters():
    a, b = models.CifarCNN(pool=False), models.CifarCNN(pool=True)
    assert models.count_parameters(a) == models.count_parameters(b)
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in b.modules())
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in a.modules())


def test_vgg16_is_torchvision_vgg_with_13_convs_and_batch_norm():
    model = models.vgg16()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 13 and len(bns) == 13
    assert model.classifier[-1].out_features == 10
    assert 14_000_000 < models.count_parameters(model) < 16_000_000


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("resnet", {}, "model='resnet' is not known; allowed values: mlp"),
        ("mlp", {"hidden": ()}, "hidden=()"),
        ("mlp", {"dropout": 1.0}, "dropout=1.0"),
        ("vgg16", {"width": 0}, "width=0"),
    ],
)
def test_bad_model_arguments(name, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        models.build_model(name, **kwargs)


@pytest.mark.parametrize("pool", [models.MaxPool2x2(), models.AvgPool2x2()], ids=["max", "avg"])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_2x2_pooling_equals_the_library_kernel_in_every_layout_with_gradients(pool, size):
    library = torch.nn.MaxPool2d(2) if isinstance(pool, torch.nn.MaxPool2d) else torch.nn.AvgPool2d(2, 2)
    x = torch.randn(3, 4, *size, requires_grad=True)
    for xi in (x, x.contiguous(memory_format=torch.channels_last), x[0]):
        assert torch.allclose(pool(xi), library(xi), atol=1e-6)
    grad = torch.randn_like(library(x))
    (ours,) = torch.autograd.grad(pool(x), x, grad)
    (theirs,) = torch.autograd.grad(library(x), x, grad)
    assert torch.allclose(ours, theirs, atol=1e-6)


def _relu_then_pool(model, x):
    """The drafts' order, conv -> ReLU -> max-pool, written out for `TwoConvNet` and `Conv4Net`."""
    relu, pool = torch.relu, torch.nn.functional.max_pool2d
    if isinstance(model, models.TwoConvNet):
        x = pool(relu(model.conv2(pool(relu(model.conv1(x)), 2))), 2)
    else:
        x = pool(relu(model.conv2(relu(model.conv1(x)))), 2)
        x = pool(relu(model.conv4(relu(model.conv3(x)))), 2)
    return model.out(relu(model.fc(x.flatten(1))))


@pytest.mark.parametrize("name", ["two_conv", "conv4"])
def test_pooling_before_the_relu_gives_the_drafts_network_with_its_gradients(name):
    torch.manual_seed(0)
    model = models.build_model(name).eval()
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(model(x), _relu_then_pool(model, x)), "max and ReLU commute exactly"
    ours = torch.autograd.grad(model(x).sum(), list(model.parameters()))
    drafts = torch.autograd.grad(_relu_then_pool(model, x).sum(), list(model.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, drafts, strict=True))
