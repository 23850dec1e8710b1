"""The raw data sets (MNIST, Fashion-MNIST, CIFAR-10) as uint8 arrays, found offline first.

Each data set is looked for, in order, in
1. the data root (`data/`, or `$NETSHRINK_DATA`),
2. the mirror folder (`$NETSHRINK_DATA_MIRROR`, default `../shared/data`), whose files are
   checked against its `SHA256SUMS` and copied into the data root,
3. torchvision's download into the data root.
Offline with no copy, `DataNotFoundError` says where to put the files.

Files copied or unpacked into the data root are checked against digests recorded when made
(or, found without a record, against the digests the project ships); temporary files of a
killed unpacking are removed by the next load.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

from netshrink import paths
from netshrink.io import atomic_path, file_sha256, remove_stale, write_text, write_with

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


# The SHA-256 of the unpacked files, as the project ships them: a file found without its
# SHA256SUMS record is checked against these before it is read and recorded.
SHIPPED_SHA256 = {
    "MNIST": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
# The decoded CIFAR-10 JPEG copy (`arrays_sha256` of its npz), for a cache found without its record.
SHIPPED_CIFAR_ARRAYS_SHA256 = "6fdeff7f04ec4682402082abd90118bc11560bfcc5cccd42bb37c2dffbcc5e95"


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


def check_digests(
    files: Sequence[Path], sums_file: Path, rebuild: str, shipped: dict[str, str] | None = None
) -> None:
    """Check `files` against the digests recorded in `sums_file` (once per process and file
    version), or, without a record, against the digests the project ships (`shipped`, by file
    name); a file with neither is not checked (the caller records it once read). A mismatch is
    a `DataCorruptError` naming the file and saying how to rebuild it (`rebuild`)."""
    recorded = sums_file.is_file()
    sums = read_sums(sums_file) if recorded else dict(shipped or {})
    where = f"its recorded digest in {sums_file}" if recorded else "the digest the project ships for it"
    for f in files:
        if _stamp(f) in _CHECKED or (not recorded and f.name not in sums):
            continue
        expected = sums.get(f.name)
        if expected is None or file_sha256(f) != expected:
            raise DataCorruptError(f"{f} does not match {where} (damaged or replaced); {rebuild}")
        _CHECKED.add(_stamp(f))


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """A digest of named arrays: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        a = np.ascontiguousarray(arrays[name])
        for part in (name, str(a.dtype), str(a.shape)):
            h.update(part.encode())
        h.update(a.tobytes())
    return h.hexdigest()


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
    remove_stale(raw)  # temporary files of an unpacking that was killed
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
    check_digests(files, sums_file, rebuild, SHIPPED_SHA256[folder])
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
    remove_stale(cache.parent)  # temporary files of a decoding that was killed
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
        if arrays_sha256(arrays) != SHIPPED_CIFAR_ARRAYS_SHA256:
            raise DataCorruptError(
                f"{cache} has no record ({sums_file.name}) and its arrays do not match the digest the "
                f"project ships (damaged, replaced, or decoded by another JPEG library); {rebuild}"
            )
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
