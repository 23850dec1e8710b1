import shutil

import pytest
import torch

from netshrink import data, paths, train
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
    ],
)
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        config(**kw).validate()


def test_training_beats_chance_and_is_cached(data_root):
    first = train.train_cached(config(), root=data_root, progress=False)
    assert not first.cached
    assert first.test["acc"] > 0.8  # chance is 0.1
    assert list(first.history["epoch"]) == [1, 2]
    assert {"train_loss", "val_acc", "test_acc", "seconds"} <= set(first.history.columns)
    assert first.history["train_loss"].iloc[-1] < first.history["train_loss"].iloc[0]
    folder = train.model_dir(config(), data_root)
    assert (folder / "model.pt").is_file() and not (folder / "checkpoint.pt").exists()
    second = train.train_cached(config(), root=data_root, progress=False)
    assert second.cached and second.test == first.test
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b.cpu())


def test_training_is_repeatable_with_a_seed(data_root, tmp_path):
    a = train.train_cached(config(epochs=1), root=data_root, progress=False)
    other = tmp_path / "other"
    shutil.copytree(data_root / "MNIST", other / "MNIST")
    b = train.train_cached(config(epochs=1), root=other, progress=False)
    assert a.test == b.test


def test_interrupted_training_resumes_where_it_stopped(data_root, tmp_path, monkeypatch):
    cfg = config(epochs=3, model_kwargs={"hidden": [32], "dropout": 0.2})
    unbroken = train.train_cached(cfg, root=data_root, progress=False)

    other = tmp_path / "other"
    shutil.copytree(data_root / "MNIST", other / "MNIST")
    real_save = train.torch_save

    def save_then_crash(path, obj):
        real_save(path, obj)
        if path.name == "checkpoint.pt" and obj["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "torch_save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train.train_cached(cfg, root=other, progress=False)
    folder = train.model_dir(cfg, other)
    assert (folder / "checkpoint.pt").is_file() and not (folder / "model.pt").exists()
    monkeypatch.setattr(train, "torch_save", real_save)
    resumed = train.train_cached(cfg, root=other, progress=False)
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
    key = train.store_init(start, root=data_root)
    assert key == train.store_init(start, root=data_root), "the key is the weights' hash"
    cfg = config(init=key, epochs=0)
    assert cfg.key() != config(epochs=0).key()
    assert "init" not in config().to_dict(), "configs without init keep their old keys"
    loaded = train.initial_model(cfg, root=data_root, device=torch.device("cpu"))
    for a, b in zip(loaded.state_dict().values(), start.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    result = train.train_cached(cfg, root=data_root, progress=False, device=torch.device("cpu"))
    assert torch.equal(result.model.hidden[0].weight, start.hidden[0].weight)
    with pytest.raises(FileNotFoundError, match="init='0000000000000000'"):
        train.initial_model(config(init="0" * 16), root=data_root)
