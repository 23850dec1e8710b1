import gzip
import io
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from netshrink import data, paths, raw
from netshrink.io import file_sha256


def test_mnist_shapes_range_and_labels():
    splits = data.load_dataset("mnist", val_size=5000)
    assert splits.label == "MNIST"
    assert splits.input_shape == (1, 28, 28)
    assert len(splits.train) == 55_000 and len(splits.val) == 5000 and len(splits.test) == 10_000
    x, y = splits.train[0]
    assert x.dtype == torch.float32 and x.min() >= 0.0 and x.max() <= 1.0
    assert set(splits.test.labels.unique().tolist()) == set(range(10))


def test_validation_split_is_seeded_and_disjoint_from_train():
    a = data.load_dataset("mnist", val_size=1000, train_size=2000, seed=3)
    b = data.load_dataset("mnist", val_size=1000, train_size=2000, seed=3)
    c = data.load_dataset("mnist", val_size=1000, train_size=2000, seed=4)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.val.images, c.val.images)
    train_rows = {row.numpy().tobytes() for row in a.train.images.flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in a.val.images.flatten(1)[:200])


def test_class_subset_relabels_in_given_order():
    full = data.load_dataset("mnist", val_size=0)
    sub = data.load_dataset("mnist", classes=(3, 4, 7), val_size=500)
    assert sub.classes == ("3", "4", "7") and sub.n_classes == 3
    assert set(sub.test.labels.tolist()) == {0, 1, 2}
    assert len(sub.test) == int(sum((full.test.labels == c).sum() for c in (3, 4, 7)))
    # the images relabelled 0 are the 3s
    threes = full.test.images[full.test.labels == 3]
    assert torch.equal(sub.test.images[sub.test.labels == 0], threes)


def test_fashion_mnist_loads_with_class_names():
    splits = data.load_dataset("fashion-mnist", val_size=100, test_size=500)
    assert splits.label == "Fashion-MNIST" and splits.classes[0] == "T-shirt/top"
    assert len(splits.test) == 500


def test_cifar10_jpeg_copy_is_labelled():
    splits = data.load_dataset("cifar10", val_size=1000, test_size=1000)
    assert splits.label in ("CIFAR-10 (JPEG copy)", "CIFAR-10")
    assert splits.input_shape == (3, 32, 32)
    assert splits.classes[0] == "airplane" and len(splits.classes) == 10
    assert splits.test.labels.bincount().min() > 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "imagenet"}, "allowed values: mnist, fashion-mnist, cifar10"),
        ({"name": "mnist", "val_size": -1}, "val_size=-1"),
        ({"name": "mnist", "train_size": 0}, "train_size=0"),
        ({"name": "mnist", "test_size": 10**6}, "test_size=1000000"),
        ({"name": "mnist", "classes": (3, 11)}, "classes=[3, 11]"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        data.load_dataset(**kwargs)


def _fake_mirror(tmp_path, corrupt=False):
    mirror = tmp_path / "mirror"
    folder = mirror / "MNIST" / "raw"
    folder.mkdir(parents=True)
    src = paths.mirror_dir()
    lines = []
    for f in raw.IDX_FILES:
        shutil.copy(src / "MNIST" / "raw" / f"{f}.gz", folder / f"{f}.gz")
        digest = file_sha256(folder / f"{f}.gz")
        if corrupt and f.startswith("t10k-labels"):
            digest = "0" * 64
        lines.append(f"{digest}  MNIST/raw/{f}.gz")
    (mirror / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return mirror


@pytest.mark.skipif(paths.mirror_dir() is None, reason="needs the offline mirror")
def test_mirror_is_checked_copied_and_then_data_root_is_used(tmp_path):
    mirror = _fake_mirror(tmp_path)
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


@pytest.mark.skipif(paths.mirror_dir() is None, reason="needs the offline mirror")
def test_corrupt_mirror_file_is_refused(tmp_path):
    mirror = _fake_mirror(tmp_path, corrupt=True)
    with pytest.raises(data.DataNotFoundError, match="does not match"):
        data.load_raw("mnist", root=tmp_path / "root", mirror=mirror, download=False)


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


def test_batched_fetch_equals_single_fetch():
    ds = data.ImageDataset(torch.rand(10, 1, 4, 4), torch.arange(10))
    x, y = ds.__getitems__([3, 1, 7])
    assert torch.equal(x, torch.stack([ds[i][0] for i in (3, 1, 7)]))
    assert y.tolist() == [3, 1, 7]
    batches = list(data.make_loader(ds, batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2]


@pytest.mark.parametrize("name, pad, flip", [("cifar10", 4, True), ("mnist", 2, False)])
def test_batched_augmentation_crops_the_padded_image_and_flips(name, pad, flip):
    aug = data.augmentation(name)
    assert (aug.pad, aug.flip) == (pad, flip)
    x = torch.rand(64, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    out = aug(x)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    flipped, moved = 0, 0
    for i in range(len(x)):
        crops = [
            padded[i, :, dy : dy + 12, dx : dx + 12] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
        ]
        plain = [torch.equal(c, out[i]) for c in crops]
        mirrored = [torch.equal(c.flip(2), out[i]) for c in crops]
        assert any(plain) or (flip and any(mirrored)), f"image {i} is not a crop of its padded image"
        flipped += not any(plain)
        moved += not torch.equal(out[i], x[i])
    assert moved > 32  # most images are shifted
    assert (flipped > 10) == flip  # about half are mirrored, when flipping
    torch.manual_seed(0)
    assert torch.equal(aug(x), out)  # seeded: repeatable


def test_augmentation_rejects_a_single_image_and_bad_padding():
    with pytest.raises(ValueError, match="batch"):
        data.augmentation("cifar10")(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="pad"):
        data.Augment(pad=-1, flip=False)


def test_batches_shuffle_by_seed_and_cover_the_data_once():
    ds = data.ImageDataset(torch.rand(10, 1, 4, 4), torch.arange(10))
    first = [y.tolist() for _, y in data.make_loader(ds, 4, shuffle=True, seed=3)]
    again = [y.tolist() for _, y in data.make_loader(ds, 4, shuffle=True, seed=3)]
    assert first == again and [len(b) for b in first] == [4, 4, 2]
    assert sorted(sum(first, [])) == list(range(10)) and sum(first, []) != list(range(10))
    assert len(data.make_loader(ds, 4)) == 3
    with pytest.raises(ValueError, match="batch_size"):
        data.make_loader(ds, 0)


# --- bad inputs and damaged files (issue: trust nothing from the cache or the caller) ---------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": "37"}, r"classes='37' must be a list of labels"),
        ({"augment": "no"}, r"augment='no' must be True or False"),
        ({"val_size": "5"}, r"val_size='5' must be an integer"),
        ({"train_size": 1.5}, r"train_size=1.5 must be an integer or None"),
        ({"seed": None}, r"seed=None must be an integer"),
        ({"classes": [3, 3.5]}, r"classes\[\]=3.5 must be an integer"),
    ],
)
def test_strings_and_floats_where_integers_belong_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load_dataset("mnist", **kwargs)


def test_numpy_integers_are_taken_as_integers():
    splits = data.load_dataset(
        "mnist", val_size=np.int64(100), train_size=np.int32(300), classes=np.array([3, 7])
    )
    assert len(splits.train) == 300 and len(splits.val) == 100 and splits.info["classes"] == [3, 7]


def test_identity_names_the_split_not_where_the_files_were():
    a = data.load_dataset("mnist", val_size=100, train_size=300)
    assert a.identity == data.load_dataset("mnist", val_size=100, train_size=300).identity
    assert "source" not in a.identity and a.identity["dataset"] == "mnist"
    assert (
        a.identity["indices"]
        != data.load_dataset("mnist", val_size=100, train_size=300, seed=1).identity["indices"]
    )


@pytest.fixture()
def mnist_root(tmp_path):
    """A private data root holding MNIST unpacked from the mirror (with its recorded digests)."""
    data.load_raw("mnist")
    root = tmp_path / "root"
    shutil.copytree(paths.data_root() / "MNIST", root / "MNIST")
    raw._CHECKED.clear()
    return root


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
    with pytest.raises(raw.DataCorruptError, match=r"cannot read the IDX files in .*MNIST/raw"):
        data.load_raw("mnist", root=mnist_root, mirror=None, download=False)
    assert not (mnist_root / "MNIST/raw/SHA256SUMS").exists(), "a file that cannot be read is never recorded"


def test_a_damaged_cifar_cache_is_refused_naming_it(tmp_path):
    cache = tmp_path / raw.CIFAR_JPEG_CACHE
    cache.parent.mkdir(parents=True)
    arrays = {"x_train": np.zeros((2, 32, 32, 3), np.uint8), "y_train": np.zeros(2, np.int64),
              "x_test": np.zeros((1, 32, 32, 3), np.uint8), "y_test": np.zeros(1, np.int64)}  # fmt: skip
    raw._savez(cache, arrays)
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
    mirror = _fake_mirror(tmp_path)
    sums = mirror / "SHA256SUMS"
    sums.write_text(sums.read_text() + "not-a-digest\n")
    with pytest.raises(raw.DataCorruptError, match=r"SHA256SUMS, line 5: 'not-a-digest' is not"):
        data.load_raw("mnist", root=tmp_path / "root", mirror=mirror, download=False)


def test_a_misspelt_mirror_variable_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("NETSHRINK_DATA_MIRROR", str(tmp_path / "shraed"))
    monkeypatch.setattr(raw.torchvision.datasets.FashionMNIST, "download", lambda *a, **k: 1 / 0)
    with pytest.raises(data.DataNotFoundError, match=r"NETSHRINK_DATA_MIRROR='.*shraed' is not a folder"):
        data.load_raw("fashion-mnist", root=tmp_path / "empty")
