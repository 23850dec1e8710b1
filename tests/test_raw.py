"""The raw files: data root, mirror with checked digests, torchvision download, clear errors offline."""

import gzip
import io
import shutil
import tarfile

import numpy as np
import pytest
import torch
from conftest import fake_mirror
from PIL import Image

from netshrink import data, paths, raw


@pytest.fixture()
def mnist_root(tmp_path):
    """A private data root holding MNIST unpacked from the mirror (with its recorded digests)."""
    data.load_raw("mnist")
    root = tmp_path / "root"
    shutil.copytree(paths.data_root() / "MNIST", root / "MNIST")
    raw._CHECKED.clear()
    return root


@pytest.mark.skipif(paths.mirror_dir() is None, reason="needs the offline mirror")
def test_mirror_is_checked_copied_and_then_data_root_is_used(tmp_path):
    mirror = fake_mirror(tmp_path)
    root = tmp_path / "root"
    raw = data.load_raw("mnist", root=root, mirror=mirror, download=False)
    assert raw.source.startswith("mirror")
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert not list(root.rglob("*.tmp*")), "no temporary file is left behind"
    with gzip.open(mirror / "MNIST/raw/t10k-labels-idx1-ubyte.gz", "rb") as f:
        assert f.read() == (root / "MNIST/raw/t10k-labels-idx1-ubyte").read_bytes()
    again = data.load_raw("mnist", root=root, mirror=None, download=False)
    assert again.source == "data root"
    assert torch.equal(raw.x_test, again.x_test)


def test_no_copy_offline_gives_one_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(raw.torchvision.datasets.FashionMNIST, "download", offline)
    monkeypatch.setattr(raw.torchvision.datasets.CIFAR10, "download", offline)
    root = tmp_path / "empty"
    for name in ("fashion-mnist", "cifar10"):
        with pytest.raises(data.DataNotFoundError) as err:
            data.load_raw(name, root=root, mirror=tmp_path / "no-mirror", download=True)
        text = str(err.value)
        assert str(root) in text and "NETSHRINK_DATA_MIRROR" in text and "put" in text


def test_decode_cifar_jpeg_tar(tmp_path):
    tar_path = tmp_path / "tiny.tar.xz"
    rng = np.random.default_rng(0)
    with tarfile.open(tar_path, "w:xz") as tar:
        for split, cls, i in [("train", "cat", 0), ("train", "airplane", 1), ("test", "truck", 0)]:
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
            info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    arrays = raw.decode_cifar_jpeg_tar(tar_path)
    assert arrays["x_train"].shape == (2, 32, 32, 3) and arrays["x_train"].dtype == np.uint8
    assert arrays["y_train"].tolist() == [0, 3]  # sorted by path: airplane, then cat
    assert arrays["y_test"].tolist() == [9]


def test_a_flipped_byte_in_an_unpacked_idx_file_is_refused_naming_it(mnist_root):
    data.load_raw("mnist", root=mnist_root, download=False)
    assert (mnist_root / "MNIST/raw/SHA256SUMS").is_file()
    path = mnist_root / "MNIST/raw/train-images-idx3-ubyte"
    blob = bytearray(path.read_bytes())
    blob[5000] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(raw.DataCorruptError, match=r"train-images-idx3-ubyte does not match .*delete .*raw"):
        data.load_raw("mnist", root=mnist_root, download=False)


def test_a_truncated_idx_file_is_refused_naming_it(mnist_root):
    (mnist_root / "MNIST/raw/SHA256SUMS").unlink()  # files put there by hand: no record yet
    path = mnist_root / "MNIST/raw/t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(
        raw.DataCorruptError, match=r"t10k-images-idx3-ubyte does not match the digest the project"
    ):
        data.load_raw("mnist", root=mnist_root, mirror=None, download=False)
    assert not (mnist_root / "MNIST/raw/SHA256SUMS").exists(), "a file that cannot be read is never recorded"


def test_without_its_record_a_flipped_byte_is_refused_never_recorded_as_good(mnist_root):
    sums = mnist_root / "MNIST/raw/SHA256SUMS"
    sums.unlink()
    path = mnist_root / "MNIST/raw/train-labels-idx1-ubyte"
    blob = bytearray(path.read_bytes())
    blob[100] = (blob[100] + 1) % 10  # still a valid label: only the digest can tell
    path.write_bytes(bytes(blob))
    with pytest.raises(
        raw.DataCorruptError, match="train-labels-idx1-ubyte does not match the digest the project"
    ):
        data.load_raw("mnist", root=mnist_root, mirror=None, download=False)
    assert not sums.exists()


def test_temporary_files_of_a_killed_unpacking_are_removed_by_the_next_load(mnist_root):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = mnist_root / f"MNIST/raw/.train-images-idx3-ubyte.{dead.pid}.x1y2z3.tmp"
    leftover.write_bytes(b"half an unpacked file")
    data.load_raw("mnist", root=mnist_root, mirror=None, download=False)
    assert not leftover.exists()


def test_a_damaged_cifar_cache_is_refused_naming_it(tmp_path):
    cache = tmp_path / raw.CIFAR_JPEG_CACHE
    cache.parent.mkdir(parents=True)
    arrays = {"x_train": np.zeros((2, 32, 32, 3), np.uint8), "y_train": np.zeros(2, np.int64),
              "x_test": np.zeros((1, 32, 32, 3), np.uint8), "y_test": np.zeros(1, np.int64)}  # fmt: skip
    raw._savez(cache, arrays)
    with pytest.raises(raw.DataCorruptError, match="no record .* do not match the digest the project ships"):
        data.load_raw("cifar10", root=tmp_path, mirror=None, download=False)  # not the real CIFAR-10
    raw.record_digests([cache], cache.with_name(cache.name + ".sha256"))  # as the package records its cache
    assert data.load_raw("cifar10", root=tmp_path, mirror=None, download=False).x_train.shape == (
        2,
        3,
        32,
        32,
    )
    cache.write_bytes(cache.read_bytes()[:100])
    raw._CHECKED.clear()
    with pytest.raises(
        raw.DataCorruptError, match=r"cifar10-jpeg.npz does not match .*delete .* to decode it again"
    ):
        data.load_raw("cifar10", root=tmp_path, mirror=None, download=False)
    cache.with_name(cache.name + ".sha256").unlink()  # no record: numpy's error, with the path
    with pytest.raises(raw.DataCorruptError, match=r"cannot read .*cifar10-jpeg.npz \(BadZipFile"):
        data.load_raw("cifar10", root=tmp_path, mirror=None, download=False)


def test_a_bad_line_in_sha256sums_names_the_file_and_line(tmp_path):
    mirror = fake_mirror(tmp_path)
    sums = mirror / "SHA256SUMS"
    sums.write_text(sums.read_text() + "not-a-digest\n")
    with pytest.raises(raw.DataCorruptError, match=r"SHA256SUMS, line 5: 'not-a-digest' is not"):
        data.load_raw("mnist", root=tmp_path / "root", mirror=mirror, download=False)


def test_a_misspelt_mirror_variable_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("NETSHRINK_DATA_MIRROR", str(tmp_path / "shraed"))
    monkeypatch.setattr(raw.torchvision.datasets.FashionMNIST, "download", lambda *a, **k: 1 / 0)
    with pytest.raises(data.DataNotFoundError, match=r"NETSHRINK_DATA_MIRROR='.*shraed' is not a folder"):
        data.load_raw("fashion-mnist", root=tmp_path / "empty")
