"""Data sets: MNIST, Fashion-MNIST and CIFAR-10, found offline first.

Each data set is looked for, in order, in
1. the data root (`data/`, or `$NETSHRINK_DATA`),
2. the mirror folder (`$NETSHRINK_DATA_MIRROR`, default `../shared/data`), whose files are
   checked against its `SHA256SUMS` and copied into the data root,
3. torchvision's download into the data root.
Offline with no copy, `DataNotFoundError` says where to put the files.

Images are held in memory as float tensors in [0, 1], shape (N, C, H, W).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import numbers
import os
import re
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset

from netshrink import paths
from netshrink.io import atomic_path, file_sha256, write_text, write_with

DATASETS = ("mnist", "fashion-mnist", "cifar10")

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_TORCHVISION = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST}
_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CIFAR_JPEG_TAR = "CIFAR10-jpeg/cifar10-jpeg.tar.xz"
CIFAR_JPEG_CACHE = "CIFAR10-jpeg/cifar10-jpeg.npz"


class DataNotFoundError(FileNotFoundError):
    """No copy of a data set in the data root or the mirror, and the download failed."""


class DataCorruptError(ValueError):
    """A data file does not match its recorded digest, or cannot be read."""


@dataclass(frozen=True)
class RawData:
    """A data set as uint8 arrays: images (N, C, H, W), labels (N,)."""

    label: str
    classes: tuple[str, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str = ""


def check_dataset(name: str) -> str:
    """Return the canonical data-set name or raise a ValueError naming the allowed ones."""
    key = name.lower().replace("_", "-")
    aliases = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar10-jpeg": "cifar10"}
    key = aliases.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"dataset={name!r} is not known; allowed values: {', '.join(DATASETS)}")
    return key


def read_sums(sums_file: Path) -> dict[str, str]:
    """`<sha256>  <relative path>` lines -> {path: sha256}; a malformed line is an error naming
    the file and the line."""
    sums = {}
    for number, line in enumerate(sums_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise DataCorruptError(
                f"{sums_file}, line {number}: {line!r} is not '<sha256>  <path>'; repair or replace the file"
            )
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def verify_mirror_file(mirror: Path, relpath: str) -> Path:
    """Check `mirror/relpath` against `mirror/SHA256SUMS`; return its path."""
    sums_file = mirror / "SHA256SUMS"
    path = mirror / relpath
    if not sums_file.is_file():
        raise DataNotFoundError(f"mirror {mirror} has no SHA256SUMS to check {relpath} against")
    expected = read_sums(sums_file).get(relpath)
    if expected is None:
        raise DataNotFoundError(f"{relpath} is not listed in {sums_file}")
    actual = file_sha256(path)
    if actual != expected:
        raise DataNotFoundError(
            f"{path} does not match {sums_file}: sha256 {actual}, expected {expected}; "
            "the mirror copy is damaged"
        )
    return path


_CHECKED: set[tuple[str, int, int]] = set()  # files verified in this process: (path, size, mtime)


def record_digests(files: Sequence[Path], sums_file: Path) -> None:
    """Write the SHA-256 of `files` (beside `sums_file`) into `sums_file`."""
    lines = [f"{file_sha256(f)}  {f.name}\n" for f in files]
    write_text(sums_file, "".join(lines))
    _CHECKED.update(_stamp(f) for f in files)


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def check_digests(files: Sequence[Path], sums_file: Path, rebuild: str) -> None:
    """Check `files` against the digests recorded in `sums_file` (once per process and file
    version); nothing to check without a record (files put there by hand: the caller records
    them once they have been read). A mismatch is a `DataCorruptError` naming the file and
    saying how to rebuild it (`rebuild`)."""
    if not sums_file.is_file():
        return
    sums = read_sums(sums_file)
    for f in files:
        if _stamp(f) in _CHECKED:
            continue
        expected = sums.get(f.name)
        if expected is None or file_sha256(f) != expected:
            raise DataCorruptError(
                f"{f} does not match its recorded digest in {sums_file} (damaged or replaced); {rebuild}"
            )
        _CHECKED.add(_stamp(f))


def _no_mirror() -> str:
    env = os.environ.get("NETSHRINK_DATA_MIRROR")
    if env:
        return f"no mirror (NETSHRINK_DATA_MIRROR={env!r} is not a folder: check its spelling)"
    if env is not None:
        return "no mirror (NETSHRINK_DATA_MIRROR is set empty)"
    return "no mirror (NETSHRINK_DATA_MIRROR unset and ../shared/data absent)"


def _not_found(name: str, root: Path, mirror: Path | None, layout: str, err: Exception) -> DataNotFoundError:
    where = f"mirror {mirror}" if mirror else _no_mirror()
    return DataNotFoundError(
        f"{name} not found: not in the data root {root}, {where}, and torchvision's download failed "
        f"({type(err).__name__}: {err}). To get it, put {layout} under {root}, or set "
        "NETSHRINK_DATA_MIRROR to a folder holding the offline copies, or run once with internet access."
    )


def _mnist_like(name: str, root: Path, mirror: Path | None, download: bool) -> RawData:
    folder = _FOLDER[name]
    raw = root / folder / "raw"
    source = "data root"
    if not all((raw / f).is_file() for f in IDX_FILES):
        mirror_files = [mirror / folder / "raw" / f"{f}.gz" for f in IDX_FILES] if mirror else []
        if mirror_files and all(p.is_file() for p in mirror_files):
            for f in IDX_FILES:
                src = verify_mirror_file(mirror, f"{folder}/raw/{f}.gz")
                with atomic_path(raw / f) as tmp, gzip.open(src, "rb") as fin, tmp.open("wb") as fout:
                    shutil.copyfileobj(fin, fout)
            source = f"mirror {mirror}"
        elif download:
            try:
                for train in (True, False):
                    _TORCHVISION[name](root, train=train, download=True)
            except Exception as err:  # noqa: BLE001 - any failure of the download means offline
                raise _not_found(
                    folder, root, mirror, f"the four IDX files ({', '.join(IDX_FILES)}) in {folder}/raw/", err
                ) from err
            source = "torchvision download"
        else:
            raise _not_found(
                folder, root, mirror, f"{folder}/raw/<IDX files>", RuntimeError("download=False")
            )
    rebuild = f"delete {raw} and rerun to unpack it again from the mirror (or download it)"
    files, sums_file = [raw / f for f in IDX_FILES], raw / "SHA256SUMS"
    if source != "data root":
        record_digests(files, sums_file)
    check_digests(files, sums_file, rebuild)
    try:
        train = _TORCHVISION[name](root, train=True, download=False)
        test = _TORCHVISION[name](root, train=False, download=False)
    except Exception as err:  # noqa: BLE001 - torchvision's errors name no file
        raise DataCorruptError(
            f"cannot read the IDX files in {raw} ({type(err).__name__}: {err}); {rebuild}"
        ) from err
    if not sums_file.is_file():
        record_digests(files, sums_file)  # read cleanly: recorded for the next run
    classes = tuple(str(i) for i in range(10)) if name == "mnist" else FASHION_CLASSES
    return RawData(
        label="MNIST" if name == "mnist" else "Fashion-MNIST",
        classes=classes,
        x_train=train.data.unsqueeze(1),
        y_train=train.targets.long(),
        x_test=test.data.unsqueeze(1),
        y_test=test.targets.long(),
        source=source,
    )


def decode_cifar_jpeg_tar(tar_path: Path) -> dict[str, np.ndarray]:
    """Decode `train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg` into uint8 arrays (N, 32, 32, 3)."""
    from PIL import Image

    out: dict[str, list] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    files: dict[str, bytes] = {}
    with tarfile.open(tar_path, "r|*") as tar:  # streamed in archive order: xz cannot seek cheaply
        for m in tar:
            if m.isfile() and m.name.endswith(".jpg"):
                files[m.name] = tar.extractfile(m).read()
    for name in sorted(files):
        split, cls, _ = Path(name).parts[-3:]
        img = np.asarray(Image.open(io.BytesIO(files[name])).convert("RGB"), dtype=np.uint8)
        out[f"x_{split}"].append(img)
        out[f"y_{split}"].append(CIFAR10_CLASSES.index(cls))
    return {k: np.stack(v) if k.startswith("x") else np.asarray(v, dtype=np.int64) for k, v in out.items()}


def chw(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 array -> (N, C, H, W) tensor."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def _cifar10(root: Path, mirror: Path | None, download: bool) -> RawData:
    original = root / "cifar-10-batches-py"
    cache = root / CIFAR_JPEG_CACHE
    if original.is_dir():
        return _cifar10_original(root, "data root")
    source = "data root"
    if not cache.is_file():
        tar = root / CIFAR_JPEG_TAR
        if tar.is_file():
            source = "data root (JPEG tarball)"
        elif mirror and (mirror / CIFAR_JPEG_TAR).is_file():
            tar = verify_mirror_file(mirror, CIFAR_JPEG_TAR)
            source = f"mirror {mirror}"
        elif download:
            try:
                return _cifar10_original(root, "torchvision download", download=True)
            except Exception as err:  # noqa: BLE001 - any failure of the download means offline
                raise _not_found(
                    "CIFAR-10",
                    root,
                    mirror,
                    f"the original cifar-10-batches-py/ or the JPEG copy {CIFAR_JPEG_TAR}",
                    err,
                ) from err
        else:
            raise _not_found("CIFAR-10", root, mirror, CIFAR_JPEG_TAR, RuntimeError("download=False"))
        arrays = decode_cifar_jpeg_tar(tar)
        write_with(cache, lambda tmp: _savez(tmp, arrays))
        record_digests([cache], cache.with_name(cache.name + ".sha256"))
    rebuild = f"delete {cache} to decode it again from the JPEG tarball"
    sums_file = cache.with_name(cache.name + ".sha256")
    check_digests([cache], sums_file, rebuild)
    try:
        with np.load(cache) as npz:
            arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except Exception as err:  # noqa: BLE001 - numpy's errors (BadZipFile, KeyError) name no file
        raise DataCorruptError(f"cannot read {cache} ({type(err).__name__}: {err}); {rebuild}") from err
    if not sums_file.is_file():
        record_digests([cache], sums_file)
    return RawData(
        label="CIFAR-10 (JPEG copy)",
        classes=CIFAR10_CLASSES,
        x_train=chw(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"]),
        x_test=chw(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"]),
        source=source,
    )


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with path.open("wb") as f:
        np.savez(f, **arrays)


def _cifar10_original(root: Path, source: str, download: bool = False) -> RawData:
    train = torchvision.datasets.CIFAR10(root, train=True, download=download)
    test = torchvision.datasets.CIFAR10(root, train=False, download=download)
    return RawData(
        "CIFAR-10",
        CIFAR10_CLASSES,
        chw(train.data),
        torch.tensor(train.targets),
        chw(test.data),
        torch.tensor(test.targets),
        source,
    )


def load_raw(
    name: str, root: Path | None = None, mirror: Path | None = None, download: bool = True
) -> RawData:
    """Find data set `name` (see the module docstring for the order) and return it as uint8."""
    name = check_dataset(name)
    root = Path(root) if root is not None else paths.data_root()
    mirror = mirror if mirror is not None else paths.mirror_dir()
    root.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        return _cifar10(root, mirror, download)
    return _mnist_like(name, root, mirror, download)


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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def identity(self) -> dict:
        """What makes these splits what they are (data set, sizes, seed, classes, augmentation and
        a digest of the split indices), not where the files were found: the caches' data key."""
        return {k: v for k, v in self.info.items() if k != "source"}


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
    if classes is not None:
        if isinstance(classes, str | bytes) or not hasattr(classes, "__iter__"):
            raise ValueError(f"classes={classes!r} must be a list of labels, e.g. [3, 7]")
        classes = [_integer("classes[]", c) for c in classes]
    raw = load_raw(name, root)
    x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    class_names = raw.classes
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < len(raw.classes)]
        if bad or len(set(classes)) != len(classes) or not classes:
            raise ValueError(
                f"classes={classes} is invalid; allowed: distinct labels in 0..{len(raw.classes) - 1}"
            )
        lut = torch.full((len(raw.classes),), -1, dtype=torch.long)
        lut[torch.tensor(classes)] = torch.arange(len(classes))
        keep_tr, keep_te = lut[y_train] >= 0, lut[y_test] >= 0
        x_train, y_train = x_train[keep_tr], lut[y_train[keep_tr]]
        x_test, y_test = x_test[keep_te], lut[y_test[keep_te]]
        class_names = tuple(raw.classes[c] for c in classes)
    if not 0 <= val_size < len(y_train):
        raise ValueError(f"val_size={val_size} is out of range; allowed: 0..{len(y_train) - 1}")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y_train), generator=gen)
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    _check_count("train_size", train_size, len(train_idx))
    _check_count("test_size", test_size, len(y_test))
    if train_size is not None:
        train_idx = train_idx[:train_size]
    test_idx = torch.arange(len(y_test))
    if test_size is not None:
        test_idx = torch.randperm(len(y_test), generator=gen)[:test_size].sort().values

    def to_float(x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0)

    batch_augment = augmentation(key) if augment else None
    return DataSplits(
        name=key,
        label=raw.label,
        classes=class_names,
        train=ImageDataset(to_float(x_train[train_idx]), y_train[train_idx], batch_augment),
        val=ImageDataset(to_float(x_train[val_idx]), y_train[val_idx]),
        test=ImageDataset(to_float(x_test[test_idx]), y_test[test_idx]),
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    if isinstance(dataset, ImageDataset):
        return Batches(dataset.to(device) if device is not None else dataset, batch_size, shuffle, gen)
    collate = _batch_collate if hasattr(dataset, "__getitems__") else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate)
