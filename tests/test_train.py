import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from netshrink import cache, data, models, paths, train
from netshrink.train import TrainConfig

SMALL = {"val_size": 500, "train_size": 3000, "test_size": 1000}


@pytest.fixture()
def data_root(tmp_path):
    """A private data root with MNIST copied in (no network, no mirror needed)."""
    data.load_raw("mnist")  # fills the project's data root from the mirror on first use
    root = tmp_path / "data"
    shutil.copytree(paths.data_root() / "MNIST", root / "MNIST")
    return root


def config(**kw) -> TrainConfig:
    base = dict(
        model="mlp",
        dataset="mnist",
        model_kwargs={"hidden": [64]},
        data_kwargs=SMALL,
        optimizer="adam",
        lr=1e-3,
        epochs=2,
        batch_size=64,
        seed=0,
    )
    return TrainConfig(**{**base, **kw})


def test_config_key_is_stable_and_covers_every_field():
    assert config().key() == config().key()
    assert len(config().key()) == 16
    others = [
        config(lr=2e-3),
        config(epochs=3),
        config(seed=1),
        config(model_kwargs={"hidden": [32]}),
        config(data_kwargs={**SMALL, "augment": True}),
        config(optimizer="sgd"),
    ]
    assert len({c.key() for c in others} | {config().key()}) == len(others) + 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"epochs": -1}, "epochs=-1"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"optimizer": "rmsprop"}, "optimizer='rmsprop' is not known; allowed values: sgd, adam, adamw"),
        ({"dataset": "svhn"}, "dataset='svhn'"),
        ({"model": "bert"}, "model='bert'"),
        ({"lr": 0}, "lr=0"),
        ({"schedule": "step"}, "schedule='step'"),
        ({"lr": float("inf")}, r"lr=inf must be a finite positive number"),
        ({"lr": float("nan")}, r"lr=nan must be a finite positive number"),
        ({"weight_decay": float("nan")}, r"weight_decay=nan must be a finite number >= 0"),
        ({"momentum": -0.1}, r"momentum=-0.1 must be a finite number >= 0"),
        ({"precision": "float16"}, r"precision='float16' is not known; allowed values: float32, bfloat16"),
    ],
)
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        config(**kw).validate()


def test_training_beats_chance_and_is_cached(data_root):
    first = cache.train_cached(config(), root=data_root, progress=False)
    assert not first.cached
    assert first.test["acc"] > 0.8  # chance is 0.1
    assert list(first.history["epoch"]) == [1, 2]
    assert {"train_loss", "val_acc", "test_acc", "seconds"} <= set(first.history.columns)
    assert first.history["train_loss"].iloc[-1] < first.history["train_loss"].iloc[0]
    folder = cache.model_dir(config(), data_root)
    assert (folder / "model.pt").is_file() and not (folder / "checkpoint.pt").exists()
    second = cache.train_cached(config(), root=data_root, progress=False)
    assert second.cached and second.test == first.test
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b.cpu())


def test_training_is_repeatable_with_a_seed(data_root, tmp_path):
    a = cache.train_cached(config(epochs=1), root=data_root, progress=False)
    other = tmp_path / "other"
    shutil.copytree(data_root / "MNIST", other / "MNIST")
    b = cache.train_cached(config(epochs=1), root=other, progress=False)
    assert a.test == b.test


def test_interrupted_training_resumes_where_it_stopped(data_root, tmp_path, monkeypatch):
    cfg = config(epochs=3, model_kwargs={"hidden": [32], "dropout": 0.2})
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


def test_evaluate_counts_loss_and_accuracy():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        model[1].bias.zero_()
    x = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [5.0, 0, 0, 0]])
    y = torch.tensor([0, 1, 1])
    loader = [(x, y)]
    metrics = train.evaluate(model, loader)
    assert metrics["acc"] == pytest.approx(2 / 3)
    expected = torch.nn.functional.cross_entropy(model(x), y).item()
    assert metrics["loss"] == pytest.approx(expected)


def test_training_starts_from_stored_initial_weights(data_root):
    torch.manual_seed(5)
    start = train.models.build_model("mlp", hidden=[64])
    key = cache.store_init(start, root=data_root)
    assert key == cache.store_init(start, root=data_root), "the key is the weights' hash"
    cfg = config(init=key, epochs=0)
    assert cfg.key() != config(epochs=0).key()
    assert "init" not in config().to_dict(), "configs without init keep their old keys"
    loaded = cache.initial_model(cfg, root=data_root, device=torch.device("cpu"))
    for a, b in zip(loaded.state_dict().values(), start.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    result = cache.train_cached(cfg, root=data_root, progress=False, device=torch.device("cpu"))
    assert torch.equal(result.model.hidden[0].weight, start.hidden[0].weight)
    with pytest.raises(FileNotFoundError, match="init='0000000000000000'"):
        cache.initial_model(config(init="0" * 16), root=data_root)


# --- the cache trusts nothing it did not check --------------------------------------------------


def test_splits_of_another_data_set_are_refused_before_training(data_root):
    fashion = data.load_dataset("fashion-mnist", **SMALL)
    with pytest.raises(
        ValueError,
        match=r"splits do not match config .*dataset='fashion-mnist' \(the configuration asks for 'mnist'\)",
    ):
        cache.train_cached(config(), splits=fashion, root=data_root, progress=False)
    other_seed = data.load_dataset("mnist", root=data_root, **SMALL, seed=1)
    with pytest.raises(ValueError, match=r"seed=1 \(the configuration asks for 0\)"):
        cache.train_cached(config(), splits=other_seed, root=data_root, progress=False)
    assert not cache.model_dir(config(), data_root).exists()


def _retrained(data_root, cfg, damage, match):
    first = cache.train_cached(cfg, root=data_root, progress=False)
    final = cache.model_dir(cfg, data_root) / "model.pt"
    damage(final)
    with pytest.warns(cache.CacheWarning, match=match):
        again = cache.train_cached(cfg, root=data_root, progress=False)
    assert not again.cached and again.test == first.test  # trained anew, the same way
    assert list(final.parent.glob("model.pt.refused-*")), "the refused file is kept aside"
    assert cache.train_cached(cfg, root=data_root, progress=False).cached
    return again


def _flip_byte(path):
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (_flip_byte, r"model.pt: the file does not match the SHA-256 in model.json \(damaged\)"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), r"model.pt: the file does not match the SHA-256"),
        (lambda p: p.write_bytes(b""), r"model.pt: the file does not match the SHA-256"),
        (lambda p: p.with_suffix(".json").unlink(), r"model.pt: no readable record model.json"),
    ],
    ids=["flipped byte", "truncated", "empty", "no record"],
)
def test_a_damaged_cached_model_is_set_aside_and_trained_again(data_root, damage, match):
    _retrained(data_root, config(epochs=1), damage, match)


def test_a_cached_model_made_from_other_data_is_never_loaded(data_root):
    def other_data(path):
        record = json.loads(path.with_suffix(".json").read_text())
        record["data"]["indices"] = "0123456789abcdef"
        path.with_suffix(".json").write_text(json.dumps(record))

    _retrained(data_root, config(epochs=1), other_data, r"model.pt: made with other data than asked")


def test_a_damaged_checkpoint_is_set_aside_and_training_starts_over(data_root):
    cfg = config(epochs=1)
    folder = cache.model_dir(cfg, data_root)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    (folder / "checkpoint.json").write_text("{}")
    with pytest.warns(cache.CacheWarning, match=r"checkpoint.pt: the file does not match"):
        result = cache.train_cached(cfg, root=data_root, progress=False)
    assert list(result.history["epoch"]) == [1] and result.test["acc"] > 0.5


def test_damaged_initial_weights_are_refused_naming_the_file(data_root):
    key = cache.store_init(cache.initial_model(config()), root=data_root)
    path = data_root / "models" / "inits" / f"{key}.pt"
    assert cache.initial_model(config(init=key), root=data_root) is not None
    _flip_byte(path)
    with pytest.raises(ValueError, match=rf"init='{key}': .*{key}.pt (does not match its key|cannot read)"):
        cache.initial_model(config(init=key), root=data_root)


def test_temporary_files_of_a_killed_process_are_removed_on_the_next_run(data_root):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cfg = config(epochs=1)
    folder = cache.model_dir(cfg, data_root)
    folder.mkdir(parents=True)
    stale = folder / f".checkpoint.{dead.pid}.abc123.tmp.pt"
    live = folder / f".checkpoint.{os.getpid()}.abc123.tmp.pt"
    stale.write_bytes(b"half")
    live.write_bytes(b"mine")
    cache.train_cached(cfg, root=data_root, progress=False)
    assert not stale.exists() and live.exists()


def test_fit_learns_a_separable_problem_and_records_every_epoch():
    from conftest import synthetic_batches

    torch.manual_seed(0)
    net = models.MLP(in_features=20, hidden=(32,))
    loader = synthetic_batches(n=4)
    before = train.evaluate(net, loader)["acc"]
    epochs = []
    history = train.fit(net, torch.optim.Adam(net.parameters(), lr=0.01), loader, 6, test_loader=loader,
                        progress=False, on_epoch_end=lambda e, h: epochs.append(e))  # fmt: skip
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6] and epochs == [1, 2, 3, 4, 5, 6]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_acc"] > max(0.5, before), "well above chance (0.1) on learnable data"
    with pytest.raises(ValueError):
        train.fit(net, torch.optim.Adam(net.parameters()), [], 1, progress=False)


@pytest.mark.parametrize(
    "optimizer, cls, decay",
    [("sgd", torch.optim.SGD, 5e-4), ("adam", torch.optim.Adam, 0.1), ("adamw", torch.optim.AdamW, 0.1)],
)
def test_make_optimizer_builds_the_configured_optimiser(optimizer, cls, decay):
    momentum = 0.9 if optimizer == "sgd" else 0.0
    config = TrainConfig(
        "mlp", "mnist", {}, {}, optimizer=optimizer, lr=0.05, momentum=momentum, weight_decay=decay
    )
    opt = train.make_optimizer(config, models.MLP(in_features=4, hidden=(3,)).parameters())
    assert type(opt) is cls and opt.defaults["lr"] == 0.05 and opt.defaults["weight_decay"] == decay
    if optimizer == "sgd":
        assert opt.defaults["momentum"] == 0.9


def test_a_verified_file_loads_only_with_its_own_record(tmp_path):
    path = tmp_path / "model.pt"
    cache.save_verified(path, {"w": torch.ones(2)}, {"config": "a"})
    assert torch.equal(cache.load_verified(path, {"config": "a"}, torch.device("cpu"))["w"], torch.ones(2))
    with pytest.warns(cache.CacheWarning, match="model.pt"):
        assert cache.load_verified(path, {"config": "b"}, torch.device("cpu")) is None
    assert not path.exists() and cache.load_verified(path, {"config": "a"}, torch.device("cpu")) is None
