"""Data sets as tensors: splits (train, validation, test; subsets of classes and sizes), the
batched augmentation and loaders. The files come from `netshrink.raw` (data root, mirror,
torchvision's download, in that order).

Images are held in memory as float tensors in [0, 1], shape (N, C, H, W).
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from netshrink.checks import check_int

# Re-exported (`x as x`): a caller of `data` needs these without knowing `raw`.
from netshrink.raw import DATASETS as DATASETS
from netshrink.raw import DataNotFoundError as DataNotFoundError
from netshrink.raw import RawData, check_dataset, load_raw


@dataclass(frozen=True)
class Augment:
    """Batched augmentation: a random crop of the image's size from the image padded by `pad`
    zero pixels on each side, and (with `flip`) a horizontal flip with probability 1/2.

    Works on a whole batch (N, C, H, W) on the batch's device, by tensor operations, with the
    random offsets and flips drawn there (from the generator `torch.manual_seed` seeds, which
    `train.fit` does per epoch), so a GPU never waits for the host. Hand-written because
    torchvision's transforms draw one crop for a whole batch; per image they cost a Python call
    each (10x slower on a CPU).
    """

    pad: int
    flip: bool

    def __post_init__(self) -> None:
        if not isinstance(self.pad, int) or self.pad < 0:
            raise ValueError(f"pad={self.pad!r} must be a non-negative integer")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"Augment takes a batch (N, C, H, W); got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        out = x
        if self.pad:
            offsets = torch.randint(0, 2 * self.pad + 1, (2, n), device=x.device)
            windows = nn.functional.pad(x, (self.pad,) * 4).unfold(2, h, 1).unfold(3, w, 1)
            out = windows[torch.arange(n, device=x.device), :, offsets[0], offsets[1]]  # (N, C, H, W)
        if self.flip:
            flip = (torch.rand(n, device=x.device) < 0.5).view(n, 1, 1, 1)
            out = torch.where(flip, out.flip(3), out)
        return out


class ImageDataset(Dataset):
    """Images (N, C, H, W) float in [0, 1] and labels (N,), with an optional batched `augment`.

    Implements `__getitems__` so a DataLoader fetches (and augments) a whole batch by one index
    operation instead of N `__getitem__` calls (several times faster for MNIST-sized nets).
    `to(device)` gives the same data set held on `device` (a GPU trains from memory it owns).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: Augment | None = None):
        if len(images) != len(labels):
            raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) differ in length")
        if augment is not None and not isinstance(augment, Augment):
            raise ValueError(f"augment must be a data.Augment or None; got {type(augment).__name__}")
        self.images = images
        self.labels = labels
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i]
        return (self.augment(x.unsqueeze(0))[0] if self.augment else x), self.labels[i]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, device=self.labels.device)
        x = self.images[idx]
        if self.augment is not None:
            x = self.augment(x)
        return x, self.labels[idx]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> ImageDataset:
        """This data set with its tensors on `device` (itself when they are there already)."""
        if self.images.device == torch.device(device) and self.labels.device == torch.device(device):
            return self
        return ImageDataset(self.images.to(device), self.labels.to(device), self.augment)


def _batch_collate(batch):
    """`ImageDataset.__getitems__` already returns a batch: nothing to collate."""
    return batch


@dataclass
class DataSplits:
    """Train, validation and test sets of one data set, with what a caption needs."""

    name: str
    label: str
    classes: tuple[str, ...]
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    info: dict = field(default_factory=dict)
    _digest_of: tuple = field(default=(), init=False, repr=False, compare=False)
    _digest: str = field(default="", init=False, repr=False, compare=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def identity(self) -> dict:
        """What makes these splits what they are (data set, sizes, seed, classes, augmentation, a
        digest of the split indices and one of the tensors themselves), not where the files were
        found: the caches' data key. Pixels changed in place change it."""
        return {**{k: v for k, v in self.info.items() if k != "source"}, "tensors": self.tensor_digest()}

    def tensor_digest(self) -> str:
        """16 hex digits of the SHA-256 of every image and label tensor of the three splits;
        computed again only when a tensor was replaced or changed in place (its `_version`)."""
        tensors = [t for split in (self.train, self.val, self.test) for t in (split.images, split.labels)]
        stamp = tuple((id(t), t.data_ptr(), t._version) for t in tensors)
        if stamp != self._digest_of:
            h = hashlib.sha256()
            for t in tensors:
                h.update(f"{t.dtype}{tuple(t.shape)}|".encode())
                h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy())
            self._digest_of, self._digest = stamp, h.hexdigest()[:16]
        return self._digest


def _integer(name: str, value: object, optional: bool = False) -> int | None:
    """An int from an int or numpy integer; None when `optional`; else a ValueError naming `name`."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} must be an integer" + (" or None" if optional else ""))
    return int(value)


def _digest(*tensors: torch.Tensor) -> str:
    """16 hex digits of the SHA-256 of integer tensors (the split indices)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.to(torch.int64).numpy().tobytes() + b"|")
    return h.hexdigest()[:16]


def augmentation(name: str) -> Augment:
    """The standard augmentation: random 32x32 crop with 4-pixel padding and horizontal flip
    for CIFAR-10; random crop with 2-pixel padding for the 28x28 sets (no flip: digits are not symmetric)."""
    if check_dataset(name) == "cifar10":
        return Augment(pad=4, flip=True)
    return Augment(pad=2, flip=False)


# (training images, test images) of each data set, to check sizes before loading anything
SPLIT_SIZES = {"mnist": (60_000, 10_000), "fashion-mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}


def _check_count(name: str, value: int | None, upper: int) -> None:
    if value is not None and not (0 < value <= upper):
        raise ValueError(f"{name}={value} is out of range; allowed: 1..{upper} (or None for all)")


def load_dataset(
    name: str,
    *,
    val_size: int = 5000,
    train_size: int | None = None,
    test_size: int | None = None,
    classes: Sequence[int] | None = None,
    augment: bool = False,
    seed: int = 0,
    root: Path | None = None,
) -> DataSplits:
    """Load `name` and split it.

    The validation set (`val_size` images) is carved from the training set by a
    permutation seeded with `seed`; `train_size` then keeps that many of the rest,
    `test_size` a seeded random subset of the test set. `classes` keeps only those
    labels, relabelled 0..k-1 in the order given (e.g. (3, 4, 7) -> 0, 1, 2).
    """
    key = check_dataset(name)
    if not isinstance(augment, bool):
        raise ValueError(f"augment={augment!r} must be True or False")
    val_size = _integer("val_size", val_size)
    train_size = _integer("train_size", train_size, optional=True)
    test_size = _integer("test_size", test_size, optional=True)
    seed = _integer("seed", seed)
    classes = _label_list(classes)
    raw = _keep_classes(load_raw(name, root), classes)
    train_idx, val_idx, test_idx = _split_indices(
        len(raw.y_train), len(raw.y_test), val_size, train_size, test_size, seed
    )
    batch_augment = augmentation(key) if augment else None
    return DataSplits(
        name=key,
        label=raw.label,
        classes=raw.classes,
        train=ImageDataset(_to_float(raw.x_train[train_idx]), raw.y_train[train_idx], batch_augment),
        val=ImageDataset(_to_float(raw.x_train[val_idx]), raw.y_train[val_idx]),
        test=ImageDataset(_to_float(raw.x_test[test_idx]), raw.y_test[test_idx]),
        info={
            "dataset": key,
            "indices": _digest(train_idx, val_idx, test_idx, torch.tensor(classes or [])),
            "source": raw.source,
            "n_train": len(train_idx),
            "n_val": val_size,
            "n_test": len(test_idx),
            "classes": list(classes) if classes else None,
            "augment": augment,
            "seed": seed,
        },
    )


def _label_list(classes: Sequence[int] | None) -> list[int] | None:
    """`classes` as a list of ints (None stays None); a ValueError unless a list of labels."""
    if classes is None:
        return None
    if isinstance(classes, str | bytes) or not hasattr(classes, "__iter__"):
        raise ValueError(f"classes={classes!r} must be a list of labels, e.g. [3, 7]")
    return [_integer("classes[]", c) for c in classes]


def _keep_classes(raw: RawData, classes: list[int] | None) -> RawData:
    """`raw` with only the labels `classes`, relabelled 0..k-1 in their order (all when None)."""
    if classes is None:
        return raw
    bad = [c for c in classes if not 0 <= c < len(raw.classes)]
    if bad or len(set(classes)) != len(classes) or not classes:
        raise ValueError(
            f"classes={classes} is invalid; allowed: distinct labels in 0..{len(raw.classes) - 1}"
        )
    lut = torch.full((len(raw.classes),), -1, dtype=torch.long)
    lut[torch.tensor(classes)] = torch.arange(len(classes))
    keep_tr, keep_te = lut[raw.y_train] >= 0, lut[raw.y_test] >= 0
    return replace(
        raw,
        classes=tuple(raw.classes[c] for c in classes),
        x_train=raw.x_train[keep_tr],
        y_train=lut[raw.y_train[keep_tr]],
        x_test=raw.x_test[keep_te],
        y_test=lut[raw.y_test[keep_te]],
    )


def _split_indices(
    n_train: int, n_test: int, val_size: int, train_size: int | None, test_size: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, validation, test) indices: the validation set first of a seeded permutation of the
    training set, `train_size` of the rest, a seeded sorted subset of `test_size` test images."""
    if not 0 <= val_size < n_train:
        raise ValueError(f"val_size={val_size} is out of range; allowed: 0..{n_train - 1}")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n_train, generator=gen)
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    _check_count("train_size", train_size, len(train_idx))
    _check_count("test_size", test_size, n_test)
    if train_size is not None:
        train_idx = train_idx[:train_size]
    test_idx = torch.arange(n_test)
    if test_size is not None:
        test_idx = torch.randperm(n_test, generator=gen)[:test_size].sort().values
    return train_idx, val_idx, test_idx


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images as floats in [0, 1]."""
    return x.float().div_(255.0)


class Batches:
    """Batches (x, y) of an `ImageDataset`, cut by tensor indexing on the data set's device.

    The permutation of an epoch is drawn from `generator` (a CPU generator, so the order is the
    same on every device) and moved to the device once; batches are then augmented there. No
    batch waits on the host, which keeps a GPU busy. Iterates like a DataLoader.
    """

    def __init__(
        self, dataset: ImageDataset, batch_size: int, shuffle: bool, generator: torch.Generator | None
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        order = order.to(self.dataset.device) if order is not None else None
        for start in range(0, n, self.batch_size):
            if order is None:
                x = self.dataset.images[start : start + self.batch_size]
                y = self.dataset.labels[start : start + self.batch_size]
            else:
                idx = order[start : start + self.batch_size]
                x, y = self.dataset.images[idx], self.dataset.labels[idx]
            yield (self.dataset.augment(x) if self.dataset.augment is not None else x), y


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Batches | DataLoader:
    """Batches of `dataset`, shuffled (seeded by `seed`) when `shuffle`: `Batches` for an
    `ImageDataset`, a DataLoader fetching whole batches for any other data set.

    With `device`, an `ImageDataset` is first moved there whole, so that its batches are cut and
    augmented on that device (no copy from host memory per batch)."""
    check_int("batch_size", batch_size, 1)
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    if isinstance(dataset, ImageDataset):
        return Batches(dataset.to(device) if device is not None else dataset, batch_size, shuffle, gen)
    collate = _batch_collate if hasattr(dataset, "__getitems__") else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate)
