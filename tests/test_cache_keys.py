"""Cache keys stay what they were: the keys of the committed `full` results (their provenance's
`models`) rebuilt from the parameters those runs recorded, so that a change to how keys are made
never orphans hours of cached training."""

import dataclasses
import json
import types
from pathlib import Path

import pytest
import torch

from netshrink import cache, train
from netshrink.experiments import random_pruning as rp
from netshrink.experiments import vgg_case_study as vc
from netshrink.finetune import FineTuneConfig

FULL = Path(__file__).resolve().parents[1] / "results" / "full"
# `data.load_dataset("cifar10", val_size=5000, seed=0, augment=True).identity` (the mirror's
# CIFAR-10 JPEG copy): the data part of the VGG chapter's fine-tuning keys.
CIFAR10_IDENTITY = {"augment": True, "classes": None, "dataset": "cifar10", "indices": "4546914c8757eb41",
                    "n_test": 10000, "n_train": 45000, "n_val": 5000, "seed": 0,
                    "tensors": "93d824e7c1450a30"}  # fmt: skip


def _recorded(chapter: str) -> tuple[dict, dict[str, list[str]], str]:
    """A committed full run's parameters, its model keys by what the model is, and its precision."""
    parameters = json.loads((FULL / chapter / "parameters.json").read_text())
    keys: dict[str, list[str]] = {}
    for row in json.loads((FULL / chapter / "provenance.json").read_text())["models"]:
        keys.setdefault(row["model"], []).append(row["key"])
    return parameters, keys, parameters["computed on"].rsplit(", ", 1)[1]


def _fine_tuning_key(monkeypatch, *args, **kwargs) -> str:
    """The key `cache.fine_tune_cached(*args, **kwargs)` looks its result up by (nothing trained)."""

    class Looked(Exception):
        pass

    def look(path, record, device):
        raise Looked(record["key"])

    monkeypatch.setattr(cache, "load_verified", look)
    with pytest.raises(Looked) as looked:
        cache.fine_tune_cached(*args, progress=False, **kwargs)
    return str(looked.value)


def test_the_vgg_chapters_training_key_is_rebuilt_from_its_parameters():
    p, keys, precision = _recorded("vgg_case_study")
    config = vc.vgg_config(
        width=p["width"], epochs=p["epochs"], lr=p["lr"], schedule=p["schedule"],
        label_smoothing=p["label_smoothing"], weight_decay=p["weight_decay"], dropout=p["dropout"],
        seed=p["seed"], data_kwargs=vc.data_kwargs(p["val_size"], p["train_size"], p["test_size"], p["seed"]),
    )  # fmt: skip
    assert [dataclasses.replace(config, precision=precision).key()] == keys["vgg16 on cifar10"]
    assert keys["vgg16 on cifar10"] == ["3fc44b5023300671"]


def test_the_random_pruning_chapters_training_keys_are_rebuilt_from_its_parameters():
    p, keys, precision = _recorded("random_pruning")
    data_kwargs = {"val_size": p["val_size"], "train_size": p["train_size"], "seed": p["seed"]}
    for dataset in rp.DATASETS:
        configs = rp.network_configs(
            dataset, p["n_networks"], seed=p["seed"], epochs=p["epochs"], batch_size=p["batch_size"],
            hidden=p["hidden"], data_kwargs=data_kwargs,
        )  # fmt: skip
        rebuilt = [dataclasses.replace(c, precision=precision).key() for c in configs]
        assert rebuilt == keys[f"mlp on {dataset}"][: len(rebuilt)]
    assert rebuilt[0] == "49f07ac8a25c3d71"


def _vgg_fine_tuning_key(monkeypatch, p: dict, rates: dict, base: str, precision: str) -> str:
    """The key of the VGG chapter's first fine-tuning (the pruned network) under parameters `p`."""
    origin = json.dumps({"model": base, "rates": rates, "multiple_of": p["channel_multiple"]}, sort_keys=True)
    teacher = train.Distillation(torch.nn.Linear(1, 1), base, p["distill_weight"], p["distill_temperature"])
    splits = types.SimpleNamespace(identity=CIFAR10_IDENTITY, label="CIFAR-10 (JPEG copy)")
    key = _fine_tuning_key(
        monkeypatch, torch.nn.Linear(1, 1), origin, splits, epochs=p["finetune_epochs"], lr=p["finetune_lr"],
        batch_size=128, seed=p["seed"], precision=precision, optimizer=p["finetune_optimizer"],
        label_smoothing=p["label_smoothing"], distill=teacher,
    )  # fmt: skip
    config = FineTuneConfig(
        origin, CIFAR10_IDENTITY, p["finetune_epochs"], lr=p["finetune_lr"], batch_size=128, seed=p["seed"],
        precision=precision, optimizer=p["finetune_optimizer"], label_smoothing=p["label_smoothing"],
        distill=teacher,
    )  # fmt: skip
    assert config.validate().key() == key
    return key


def test_the_vgg_chapters_first_fine_tuning_key_is_rebuilt_from_its_parameters(monkeypatch):
    p, keys, precision = _recorded("vgg_case_study")
    glue = json.loads((FULL / "vgg_case_study" / "glue.json").read_text())
    columns = (FULL / "vgg_case_study" / "V-F1.csv").read_text().splitlines()[0].split(",")[1:]
    layers = [c.split("(")[1].rstrip(")") for c in columns]  # "conv 1 (features.0)" -> features.0
    rates = {layer: int(pct) / 100 for layer, pct in zip(layers, glue["rates"].split(", "), strict=True)}
    (base,) = keys["vgg16 on cifar10"]
    key = _vgg_fine_tuning_key(monkeypatch, p, rates, base, precision)
    assert key == keys["fine-tuning on CIFAR-10 (JPEG copy)"][0]


# The VGG chapter's first fine-tuning key of the run committed before its fine-tunings took 10 epochs
# (its parameters and its rates as that run recorded them): a stored key that stays what it was.
EARLIER_VGG_RATES = {"features.0": 0.5, "features.3": 0.3, "features.7": 0.3, "features.10": 0.2,
                     "features.14": 0.2, "features.17": 0.4, "features.20": 0.4, "features.24": 0.5,
                     "features.27": 0.7, "features.30": 0.8, "features.34": 0.8, "features.37": 0.8,
                     "features.40": 0.9}  # fmt: skip
EARLIER_VGG_PARAMETERS = {"channel_multiple": 8, "distill_weight": 0.9, "distill_temperature": 4.0,
                          "finetune_epochs": 20, "finetune_lr": 0.01, "seed": 0, "finetune_optimizer": "sgd",
                          "label_smoothing": 0.1}  # fmt: skip


def test_the_earlier_vgg_fine_tuning_key_stays(monkeypatch):
    key = _vgg_fine_tuning_key(
        monkeypatch, EARLIER_VGG_PARAMETERS, EARLIER_VGG_RATES, "3fc44b5023300671", "bfloat16"
    )
    assert key == "042082d551bd5c6c"


# Fine-tuning keys of the settings no committed run used, as the code made them before fine-tuning
# had a configuration of its own (Adam keys leave out the optimizer and the smoothing, both or neither).
EARLIER_FINE_TUNING_KEYS = {
    "adam": ({}, "6816d7f87e046d21"),
    "adam, smoothed": ({"label_smoothing": 0.1}, "e69781801955c480"),
    "sgd": ({"optimizer": "sgd"}, "7c2e9c0168abb515"),
    "sgd, distilled at weight 0": ({"optimizer": "sgd", "distill": 0.0}, "7c2e9c0168abb515"),
    "bfloat16, distilled": ({"precision": "bfloat16", "distill": 0.5}, "3795d36012f2886d"),
}


@pytest.mark.parametrize("settings", EARLIER_FINE_TUNING_KEYS, ids=str)
def test_fine_tuning_keys_of_earlier_versions_stay(monkeypatch, settings):
    kwargs, expected = EARLIER_FINE_TUNING_KEYS[settings]
    if "distill" in kwargs:
        kwargs = {
            **kwargs,
            "distill": train.Distillation(torch.nn.Linear(1, 1), "teacher", kwargs["distill"]),
        }
    splits = types.SimpleNamespace(identity={"dataset": "mnist", "n": 120, "tensors": "0123456789abcdef"},
                                   label="tiny")  # fmt: skip
    key = _fine_tuning_key(monkeypatch, torch.nn.Linear(1, 1), "origin", splits, epochs=3, lr=0.01, **kwargs)
    assert key == expected
