"""Every network the drafts train, and a registry to build them by name.

| name | draft | network |
| --- | --- | --- |
| `mlp` | 000, 004 | fully connected: one hidden layer of 128, 2x512 with dropout 0.4, 3 hidden layers |
| `one_conv` | 000 | conv 32 5x5 (stride 1, pad 2) + dense 100 |
| `two_conv` | 000 | 2 x (conv 32 5x5 pad 2, 2x2 max-pool) + dense 100 |
| `lenet` | 002 | the week-6 `Net` (120,382 parameters) |
| `cifar_cnn` | 003 | 4 convs + dense 512; strided convs, or max-pooling with `pool=True` |
| `conv4` | 004 | 4 conv layers + a dense layer (chapter 5 of the Oslo draft) |
| `vgg16` | 004 | torchvision's VGG-16 (batch norm), adapted to 32x32 inputs and 10 classes |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg


def _pool_pairs(
    x: torch.Tensor, combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """2x2, stride-2 pooling of (N, C, H, W) by `combine` of column pairs, then of row pairs;
    odd sizes are floored, as PyTorch's kernels do. (N, C, H // 2, W // 2)."""
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    x = combine(x[..., 0::2], x[..., 1::2])
    return combine(x[..., 0::2, :], x[..., 1::2, :])


class MaxPool2x2(nn.MaxPool2d):
    """`nn.MaxPool2d(2)` that, on NCHW input, takes two pairwise maxima (columns, then rows).
    Hand-written because PyTorch's NCHW max-pool kernel on CPU is several times slower than that
    (`make bench`); channels-last input keeps the library kernel, which is fast there. Same outputs."""

    def __init__(self):
        super().__init__(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or not x.is_contiguous():
            return super().forward(x)
        return _pool_pairs(x, torch.maximum)


class AvgPool2x2(nn.AvgPool2d):
    """`nn.AvgPool2d(2, 2)` that, on NCHW input, adds pairs of columns, then of rows, and scales by
    1/4; hand-written for the same reason as `MaxPool2x2`. Outputs equal up to rounding."""

    def __init__(self):
        super().__init__(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or not x.is_contiguous():
            return super().forward(x)
        return _pool_pairs(x, torch.add) * 0.25


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU -> Dropout] x len(hidden) -> Linear.

    Input (N, *in_shape), output logits (N, n_classes). Hidden linear layers are
    `hidden.0`, `hidden.1`, ... and the output layer is `out`.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (128,),
        n_classes: int = 10,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not hidden or any(h <= 0 for h in hidden):
            raise ValueError(f"hidden={tuple(hidden)} must be a non-empty list of positive widths")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} is out of range; allowed: [0, 1)")
        widths = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Linear(widths[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = self.dropout(torch.relu(layer(x)))
        return self.out(x)


class OneConvNet(nn.Module):
    """Draft 000: conv 32 filters 5x5 (stride 1, pad 2) -> ReLU -> dense 100 -> ReLU -> 10."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, n_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 32, 5, stride=1, padding=2)
        self.fc = nn.Linear(32 * image_size * image_size, 100)
        self.out = nn.Linear(100, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x)).flatten(1)
        return self.out(torch.relu(self.fc(x)))


class TwoConvNet(nn.Module):
    """Draft 000: 2 x (conv 32 5x5 pad 2 -> ReLU -> 2x2 max-pool) -> dense 100 -> 10.

    The draft names the convs and the pooling only; the dense 100 head matches its one-conv net.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
        self.pool = MaxPool2x2()
        self.fc = nn.Linear(32 * (image_size // 4) ** 2, 100)
        self.out = nn.Linear(100, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.pool(self.conv1(x)))  # = pool(relu(.)): max and ReLU commute; 1/4 the ReLU
        x = torch.relu(self.pool(self.conv2(x))).flatten(1)
        return self.out(torch.relu(self.fc(x)))


class LeNet(nn.Module):
    """draft 002's `Net`, layer for layer as printed in the week-6 slides (120,382 parameters).

    (N, 1, 28, 28) -> conv1 5x5 pad 2 -> pool -> conv2 5x5 -> pool -> 800 -> 120 -> 84 -> 10.
    """

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5, stride=1, padding=2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5, stride=1)
        self.pool = AvgPool2x2()
        self.dropout1 = nn.Dropout(p=0.2)
        self.dropout2 = nn.Dropout2d(p=0.2)
        self.l1 = nn.Linear(800, 120)
        self.l2 = nn.Linear(120, 84)
        self.l_out = nn.Linear(84, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(self.dropout2(torch.relu(self.conv2(x)))).flatten(1)
        x = self.dropout1(torch.relu(self.l1(x)))
        x = torch.relu(self.l2(x))
        return self.l_out(x)


class CifarCNN(nn.Module):
    """The book's CIFAR-10 CNN for draft 003's experiments: conv 32, conv 32, conv 64, conv 64 (3x3)
    -> dense 512 -> 10. The draft names no layer sizes: these widths are this book's choice.

    The draft's step-4 net has no pooling; its step-6 variant adds max-pooling. To compare
    them at equal parameter counts, the second conv of each pair downsamples by stride 2
    (`pool=False`) or is followed by a 2x2 max-pool (`pool=True`). (N, 3, 32, 32) -> (N, 10).
    """

    def __init__(self, pool: bool = False, n_classes: int = 10):
        super().__init__()
        down = 1 if pool else 2

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1, stride=down), nn.ReLU(),
            ]  # fmt: skip
            return [*layers, MaxPool2x2()] if pool else layers

        self.features = nn.Sequential(*block(3, 32), *block(32, 64))
        self.fc = nn.Linear(64 * 8 * 8, 512)
        self.out = nn.Linear(512, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        return self.out(torch.relu(self.fc(x)))


class Conv4Net(nn.Module):
    """Draft 004, chapter 5: 4 conv layers (3x3) with max-pooling after the 2nd and 4th, then dense.
    The draft gives no widths or kernel sizes: (32, 32, 64, 64), 3x3 and dense 128 are this
    book's choice, used on MNIST and Fashion-MNIST alike.

    Conv layers are `conv1`..`conv4` (channels `widths`), the dense layer `fc`, output `out`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        widths: Sequence[int] = (32, 32, 64, 64),
        hidden: int = 128,
        n_classes: int = 10,
    ):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths={tuple(widths)} must give 4 conv widths")
        c = [in_channels, *widths]
        self.conv1, self.conv2, self.conv3, self.conv4 = (
            nn.Conv2d(c[i], c[i + 1], 3, padding=1) for i in range(4)
        )
        self.pool = MaxPool2x2()
        self.fc = nn.Linear(widths[3] * (image_size // 4) ** 2, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.pool(self.conv2(x)))  # = pool(relu(.)): max and ReLU commute; 1/4 the ReLU
        x = torch.relu(self.conv3(x))
        x = torch.relu(self.pool(self.conv4(x))).flatten(1)
        return self.out(torch.relu(self.fc(x)))


VGG_DROPOUT = 0.5  # torchvision's rate before the classifier's last layer


def vgg16(
    n_classes: int = 10, width: float = 1.0, batch_norm: bool = True, dropout: float = VGG_DROPOUT
) -> tv_vgg.VGG:
    """torchvision's VGG-16 for 32x32 inputs: after 5 poolings (as `MaxPool2x2`) the map is
    512x1x1, so the 7x7 adaptive pool becomes 1x1 and the classifier 512 -> 512 -> n_classes
    (as in Li et al. 2017).

    `width` scales every layer's channels (the CPU profiles' narrower networks); `dropout` is
    the rate before the last layer (0 leaves the dropout out).
    """
    if width <= 0:
        raise ValueError(f"width={width} must be positive")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout={dropout} is out of range; allowed: 0 <= dropout < 1")
    cfg = [v if v == "M" else max(1, round(v * width)) for v in tv_vgg.cfgs["D"]]
    features = tv_vgg.make_layers(cfg, batch_norm=batch_norm)
    for i, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d):
            features[i] = MaxPool2x2()
    model = tv_vgg.VGG(features, num_classes=n_classes, init_weights=True)
    last = cfg[-2]
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    drop = [nn.Dropout(dropout)] if dropout else []
    model.classifier = nn.Sequential(
        nn.Linear(last, last), nn.ReLU(inplace=True), *drop, nn.Linear(last, n_classes)
    )
    return model


MODELS = {
    "mlp": MLP,
    "one_conv": OneConvNet,
    "two_conv": TwoConvNet,
    "lenet": LeNet,
    "cifar_cnn": CifarCNN,
    "conv4": Conv4Net,
    "vgg16": vgg16,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the network `name` (a key of `MODELS`) with its keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is not known; allowed values: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_names(model: nn.Module, kinds: type | tuple[type, ...] = (nn.Linear, nn.Conv2d)) -> list[str]:
    """Names of the submodules of `model` of the given kinds, in the order they are defined (the
    one layer-listing helper: compress and the experiments all list layers with it)."""
    return [name for name, m in model.named_modules() if isinstance(m, kinds)]


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the Conv2d layers of `model`, in order (features.0, features.3, ... for VGG)."""
    return layer_names(model, nn.Conv2d)
