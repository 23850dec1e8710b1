"""Fine-tuning's configuration (`finetune.FineTuneConfig`), the one rule of what enters a cache key
(`keys`), and fine-tuning resumed after an interruption like training."""

import copy
import dataclasses
import functools
import json

import pytest
import torch

from netshrink import cache, keys, models, train
from netshrink.finetune import FineTuneConfig


def _config(**kw):
    return FineTuneConfig(**{"origin": "o", "data": {"n": 120}, "epochs": 2, **kw})


def test_a_group_of_fields_leaves_the_key_only_while_all_of_it_holds_its_defaults():
    tune = {"optimizer": "adam", "label_smoothing": 0.0, "distill": None, "lr": 0.1}
    assert keys.key_fields("fine-tuning", tune) == {"lr": 0.1}
    assert keys.key_fields("fine-tuning", {**tune, "optimizer": "sgd"}) == {
        "lr": 0.1, "optimizer": "sgd", "label_smoothing": 0.0,
    }  # fmt: skip
    assert keys.key_fields("training", {"init": None, "label_smoothing": 0.1}) == {"label_smoothing": 0.1}
    assert keys.cache_key({"lr": 0.1}) == keys.cache_key({"lr": 0.1}) != keys.cache_key({"lr": 0.2})
    assert set(keys.LEFT_OUT_AT_DEFAULTS) == {"training", "fine-tuning"}


def test_every_field_of_a_fine_tuning_configuration_changes_its_key():
    teacher = train.Distillation(torch.nn.Linear(1, 1), "teacher", 0.5)
    changed = {"origin": "p", "data": {"n": 121}, "epochs": 3, "lr": 0.01, "batch_size": 32, "seed": 1,
               "precision": "bfloat16", "optimizer": "sgd", "label_smoothing": 0.1,
               "distill": teacher}  # fmt: skip
    assert set(changed) == {f.name for f in dataclasses.fields(FineTuneConfig)}
    keys_ = {name: _config(**{name: value}).key() for name, value in changed.items()}
    assert len(set(keys_.values()) | {_config().key()}) == len(changed) + 1
    unheated = dataclasses.replace(teacher, weight=0.0)
    assert _config(distill=unheated).key() == _config().key(), "weight 0: no teacher, the same key"
    assert _config(distill=unheated).teaching is None


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"epochs": -1}, r"epochs=-1 is out of range"),
        ({"batch_size": 0}, r"batch_size=0 is out of range"),
        ({"lr": float("nan")}, r"lr=nan must be a finite positive number"),
        ({"precision": "float16"}, r"precision='float16' is not known; allowed values: float32, bfloat16"),
        ({"optimizer": "rmsprop"}, r"optimizer='rmsprop' is not known; allowed values: adam, sgd"),
        ({"label_smoothing": -0.1}, r"label_smoothing=-0.1 is out of range; allowed: 0 <= x < 1"),
        ({"distill": train.Distillation(torch.nn.Linear(1, 1), "t", 2.0)}, r"distill_weight=2.0 is out"),
    ],
)
def test_a_bad_fine_tuning_configuration_is_refused_naming_the_parameter(kw, message):
    with pytest.raises(ValueError, match=message):
        _config(**kw).validate()


def test_the_recipe_of_sgd_fine_tuning_anneals_by_a_cosine_and_distils_by_a_loss():
    model = models.LeNet()
    adam = _config().validate().recipe(model, steps_per_epoch=10)
    assert isinstance(adam.optimizer, torch.optim.Adam) and adam.scheduler is None
    assert adam.fit_kwargs()["loss"] == train.CrossEntropy(0.0)
    teacher = train.Distillation(models.LeNet(), "t", 0.9, 4.0)
    sgd = _config(optimizer="sgd", label_smoothing=0.1, distill=teacher).validate().recipe(model, 10)
    assert isinstance(sgd.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert sgd.fit_kwargs()["scheduler"] is sgd.scheduler and sgd.fit_kwargs()["step_scheduler"] is None
    assert sgd.loss == train.DistillationLoss(teacher, 0.1, "float32")


def test_interrupted_fine_tuning_resumes_where_it_stopped(tmp_path, tiny_mnist, monkeypatch):
    torch.manual_seed(0)
    start, teacher = models.LeNet(), models.LeNet()
    settings = {"epochs": 3, "lr": 0.05, "batch_size": 40, "optimizer": "sgd", "label_smoothing": 0.1,
                "distill": train.Distillation(teacher, "teacher", 0.5)}  # fmt: skip
    config = FineTuneConfig("o", tiny_mnist.identity, **settings)
    tune = functools.partial(
        cache.fine_tune_cached, origin="o", splits=tiny_mnist, progress=False, **settings
    )
    unbroken = tune(copy.deepcopy(start), root=tmp_path / "a")
    assert unbroken.key == config.key()
    real_save = cache.save_verified

    def save_then_crash(path, obj, record):
        real_save(path, obj, record)
        if path.name == "checkpoint.pt" and obj["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cache, "save_verified", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        tune(copy.deepcopy(start), root=tmp_path / "b")
    folder = cache.model_dir(config, tmp_path / "b")
    assert folder == tmp_path / "b" / "models" / "finetune" / config.key()
    assert (folder / "checkpoint.pt").is_file() and not (folder / "model.pt").exists()
    monkeypatch.setattr(cache, "save_verified", real_save)
    resumed = tune(copy.deepcopy(start), root=tmp_path / "b")
    assert not resumed.cached and list(resumed.history["epoch"]) == [1, 2, 3]
    assert resumed.before == unbroken.before and resumed.test == unbroken.test
    pairs = zip(unbroken.model.state_dict().values(), resumed.model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not (folder / "checkpoint.pt").exists() and (folder / "model.pt").is_file()


def test_a_chapters_fine_tuning_is_recorded_in_its_models_json(results_dir, tmp_path, tiny_mnist):
    from netshrink.book import chapter, chapters

    vgg = chapters.VGG_CASE_STUDY
    run = vgg.start({**vgg.parameters("smoke"), "device": "cpu"}, display=False)
    torch.manual_seed(0)
    tuned = run.fine_tune(models.LeNet(), "o", tiny_mnist, epochs=1, root=tmp_path, progress=False)
    again = run.fine_tune(models.LeNet(), "o", tiny_mnist, epochs=1, root=tmp_path, progress=False)
    rows = json.loads((run.report.dir / chapter.MODELS_RECORD).read_text())
    assert [(r["model"], r["key"], r["from cache"]) for r in rows] == [
        ("fine-tuning on tiny", tuned.key, False), ("fine-tuning on tiny", tuned.key, True),
    ]  # fmt: skip
    assert again.cached and rows[0]["training seconds"] >= 0
