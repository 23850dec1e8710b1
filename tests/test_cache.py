"""The cache of trained and fine-tuned models: keys, resume, checked records, damaged files."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import SMALL_MNIST, small_config

from netshrink import cache, data, train


def _flip_byte(path):
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    path.write_bytes(bytes(blob))


def test_training_beats_chance_and_is_cached(data_root):
    first = cache.train_cached(small_config(), root=data_root, progress=False)
    assert not first.cached
    assert first.test["acc"] > 0.8  # chance is 0.1
    assert list(first.history["epoch"]) == [1, 2]
    assert {"train_loss", "val_acc", "test_acc", "seconds"} <= set(first.history.columns)
    assert first.history["train_loss"].iloc[-1] < first.history["train_loss"].iloc[0]
    folder = cache.model_dir(small_config(), data_root)
    assert (folder / "model.pt").is_file() and not (folder / "checkpoint.pt").exists()
    second = cache.train_cached(small_config(), root=data_root, progress=False)
    assert second.cached and second.test == first.test
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b.cpu())


def test_training_is_repeatable_with_a_seed(data_root, tmp_path):
    a = cache.train_cached(small_config(epochs=1), root=data_root, progress=False)
    other = tmp_path / "other"
    shutil.copytree(data_root / "MNIST", other / "MNIST")
    b = cache.train_cached(small_config(epochs=1), root=other, progress=False)
    assert a.test == b.test


@pytest.mark.parametrize(
    "recipe", [{}, {"schedule": "onecycle", "label_smoothing": 0.1}], ids=["plain", "one-cycle"]
)
def test_interrupted_training_resumes_where_it_stopped(data_root, tmp_path, monkeypatch, recipe):
    cfg = small_config(epochs=3, model_kwargs={"hidden": [32], "dropout": 0.2}, **recipe)
    unbroken = cache.train_cached(cfg, root=data_root, progress=False)

    other = tmp_path / "other"
    shutil.copytree(data_root / "MNIST", other / "MNIST")
    real_save = cache.save_verified

    def save_then_crash(path, obj, record):
        real_save(path, obj, record)
        if path.name == "checkpoint.pt" and obj["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cache, "save_verified", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        cache.train_cached(cfg, root=other, progress=False)
    folder = cache.model_dir(cfg, other)
    assert (folder / "checkpoint.pt").is_file() and not (folder / "model.pt").exists()
    monkeypatch.setattr(cache, "save_verified", real_save)
    resumed = cache.train_cached(cfg, root=other, progress=False)
    assert list(resumed.history["epoch"]) == [1, 2, 3]
    assert resumed.test == unbroken.test
    for a, b in zip(unbroken.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b)


def test_training_starts_from_stored_initial_weights(data_root):
    torch.manual_seed(5)
    start = train.models.build_model("mlp", hidden=[64])
    key = cache.store_init(start, root=data_root)
    assert key == cache.store_init(start, root=data_root), "the key is the weights' hash"
    cfg = small_config(init=key, epochs=0)
    assert cfg.key() != small_config(epochs=0).key()
    assert "init" not in small_config().to_dict(), "configs without init keep their old keys"
    loaded = cache.initial_model(cfg, root=data_root, device=torch.device("cpu"))
    for a, b in zip(loaded.state_dict().values(), start.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    result = cache.train_cached(cfg, root=data_root, progress=False, device=torch.device("cpu"))
    assert torch.equal(result.model.hidden[0].weight, start.hidden[0].weight)
    with pytest.raises(FileNotFoundError, match="init='0000000000000000'"):
        cache.initial_model(small_config(init="0" * 16), root=data_root)


def test_splits_of_another_data_set_are_refused_before_training(data_root):
    fashion = data.load_dataset("fashion-mnist", **SMALL_MNIST)
    with pytest.raises(
        ValueError,
        match=r"splits do not match config .*dataset='fashion-mnist' \(the configuration asks for 'mnist'\)",
    ):
        cache.train_cached(small_config(), splits=fashion, root=data_root, progress=False)
    other_seed = data.load_dataset("mnist", root=data_root, **SMALL_MNIST, seed=1)
    with pytest.raises(ValueError, match=r"seed=1 \(the configuration asks for 0\)"):
        cache.train_cached(small_config(), splits=other_seed, root=data_root, progress=False)
    assert not cache.model_dir(small_config(), data_root).exists()


def test_a_damaged_checkpoint_is_set_aside_and_training_starts_over(data_root):
    cfg = small_config(epochs=1)
    folder = cache.model_dir(cfg, data_root)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    (folder / "checkpoint.json").write_text("{}")
    with pytest.warns(cache.CacheWarning, match=r"checkpoint.pt: the file does not match"):
        result = cache.train_cached(cfg, root=data_root, progress=False)
    assert list(result.history["epoch"]) == [1] and result.test["acc"] > 0.5


def test_damaged_initial_weights_are_refused_naming_the_file(data_root):
    key = cache.store_init(cache.initial_model(small_config()), root=data_root)
    path = data_root / "models" / "inits" / f"{key}.pt"
    assert cache.initial_model(small_config(init=key), root=data_root) is not None
    _flip_byte(path)
    with pytest.raises(ValueError, match=rf"init='{key}': .*{key}.pt (does not match its key|cannot read)"):
        cache.initial_model(small_config(init=key), root=data_root)


def test_temporary_files_of_a_killed_process_are_removed_on_the_next_run(data_root):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cfg = small_config(epochs=1)
    folder = cache.model_dir(cfg, data_root)
    folder.mkdir(parents=True)
    stale = folder / f".checkpoint.{dead.pid}.abc123.tmp.pt"
    live = folder / f".checkpoint.{os.getpid()}.abc123.tmp.pt"
    stale.write_bytes(b"half")
    live.write_bytes(b"mine")
    cache.train_cached(cfg, root=data_root, progress=False)
    assert not stale.exists() and live.exists()


def test_a_verified_file_loads_only_with_its_own_record(tmp_path):
    path = tmp_path / "model.pt"
    cache.save_verified(path, {"w": torch.ones(2)}, {"config": "a"})
    assert torch.equal(cache.load_verified(path, {"config": "a"}, torch.device("cpu"))["w"], torch.ones(2))
    with pytest.warns(cache.CacheWarning, match="model.pt"):
        assert cache.load_verified(path, {"config": "b"}, torch.device("cpu")) is None
    assert not path.exists() and cache.load_verified(path, {"config": "a"}, torch.device("cpu")) is None


@pytest.mark.parametrize("record", ["[1]", "null", "123", '"text"'])
def test_a_record_that_is_no_object_is_set_aside_not_a_crash(tmp_path, record):
    path = tmp_path / "model.pt"
    cache.save_verified(path, {"w": torch.ones(2)}, {"config": "a"})
    path.with_suffix(".json").write_text(record)
    with pytest.warns(cache.CacheWarning, match="no readable record model.json"):
        assert cache.load_verified(path, {"config": "a"}, torch.device("cpu")) is None
    assert not path.exists() and len(list(tmp_path.glob("model.pt.refused-*"))) == 1


def test_files_refused_in_the_same_second_keep_their_own_names(tmp_path, monkeypatch):
    monkeypatch.setattr(cache.time, "strftime", lambda fmt: "20261201-120000")
    path = tmp_path / "model.pt"
    for content in (b"first", b"second", b"third"):
        path.write_bytes(content)
        with pytest.warns(cache.CacheWarning):
            cache.load_verified(path, {"config": "a"}, torch.device("cpu"))
    kept = sorted(p.read_bytes() for p in tmp_path.glob("model.pt.refused-*"))
    assert kept == [b"first", b"second", b"third"]


def test_splits_whose_pixels_were_changed_in_place_are_never_served_the_real_datas_model(data_root):
    cfg = small_config(epochs=1)
    real = data.load_dataset("mnist", root=data_root, **SMALL_MNIST)
    digest = real.tensor_digest()
    assert real.tensor_digest() == digest, "the digest is the same while nothing changes"
    changed = data.load_dataset("mnist", root=data_root, **SMALL_MNIST)
    changed.train.images.mul_(0.0)  # same split indices, other pixels
    assert changed.identity["indices"] == real.identity["indices"]
    assert changed.identity["tensors"] != real.identity["tensors"]
    trained_on_blank = cache.train_cached(cfg, splits=changed, root=data_root, progress=False)
    assert not trained_on_blank.cached
    with pytest.warns(cache.CacheWarning, match="made with other data than asked.*moved aside"):
        again = cache.train_cached(cfg, splits=real, root=data_root, progress=False)
    assert not again.cached, "the model of the changed pixels was served for the real data"
    assert again.test["acc"] > trained_on_blank.test["acc"]


def test_a_cached_model_of_another_architecture_is_set_aside_in_one_line_and_retrained(data_root):
    """Issue 41, item 11: a raw "Error(s) in loading state_dict" on every rerun, the file kept."""
    import warnings

    cfg = small_config(epochs=1)
    first = cache.train_cached(cfg, root=data_root, progress=False)
    folder = cache.model_dir(cfg, data_root)
    final = folder / "model.pt"
    meta = {k: v for k, v in json.loads(final.with_suffix(".json").read_text()).items() if k != "sha256"}
    saved = torch.load(final, weights_only=False)
    other = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    cache.save_verified(final, {**saved, "state_dict": other.state_dict()}, meta)  # right key, valid record
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = cache.train_cached(cfg, root=data_root, progress=False)
    said = [str(w.message) for w in caught if issubclass(w.category, cache.CacheWarning)]
    assert len(said) == 1 and "\n" not in said[0], said
    assert str(final) in said[0] and "holds a model of another architecture" in said[0]
    assert "moved aside to model.pt.refused-" in said[0] and "training again" in said[0]
    assert len(list(folder.glob("model.pt.refused-*"))) == 1
    assert not again.cached and again.test == first.test, "retrained from the same seed"
    assert cache.train_cached(cfg, root=data_root, progress=False).cached, "the retrained model is cached"


def test_a_state_of_another_shape_never_touches_the_model(tmp_path):
    model = torch.nn.Linear(4, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "model.pt"
    for state in ({"weight": torch.ones(3, 5), "bias": torch.ones(3)}, {"weight": torch.ones(3, 4)}, [1, 2]):
        path.write_bytes(b"x")
        with pytest.warns(cache.CacheWarning, match="model.pt: holds"):
            assert not cache.load_into(model, {"state_dict": state}, path)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    path.write_bytes(b"x")
    assert cache.load_into(model, {"state_dict": {"weight": torch.ones(3, 4), "bias": torch.zeros(3)}}, path)
