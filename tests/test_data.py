import numpy as np
import pytest
import torch
from conftest import fake_mirror

from netshrink import data, paths


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


@pytest.mark.skipif(paths.mirror_dir() is None, reason="needs the offline mirror")
def test_corrupt_mirror_file_is_refused(tmp_path):
    mirror = fake_mirror(tmp_path, corrupt=True)
    with pytest.raises(data.DataNotFoundError, match="does not match"):
        data.load_raw("mnist", root=tmp_path / "root", mirror=mirror, download=False)


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
