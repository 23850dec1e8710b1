import functools
import json

import pytest
import torch
from conftest import SMALL_MNIST, small_config, synthetic_batches

from netshrink import cache, models, train
from netshrink.train import TrainConfig


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


def test_config_key_is_stable_and_covers_every_field():
    assert small_config().key() == small_config().key()
    assert len(small_config().key()) == 16
    others = [
        small_config(lr=2e-3),
        small_config(epochs=3),
        small_config(seed=1),
        small_config(model_kwargs={"hidden": [32]}),
        small_config(data_kwargs={**SMALL_MNIST, "augment": True}),
        small_config(optimizer="sgd"),
        small_config(schedule="onecycle"),
        small_config(label_smoothing=0.1),
    ]
    assert len({c.key() for c in others} | {small_config().key()}) == len(others) + 1
    # fields added later leave the keys of models trained before them as they were
    assert "label_smoothing" not in small_config().to_dict() and "init" not in small_config().to_dict()


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
        ({"label_smoothing": 1.0}, r"label_smoothing=1.0 must be a number in \[0, 1\)"),
        ({"schedule": "cyclic"}, r"schedule='cyclic' is not known; allowed values: none, cosine, onecycle"),
    ],
)
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        small_config(**kw).validate()


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
    _retrained(data_root, small_config(epochs=1), damage, match)


def test_a_cached_model_made_from_other_data_is_never_loaded(data_root):
    def other_data(path):
        record = json.loads(path.with_suffix(".json").read_text())
        record["data"]["indices"] = "0123456789abcdef"
        path.with_suffix(".json").write_text(json.dumps(record))

    _retrained(data_root, small_config(epochs=1), other_data, r"model.pt: made with other data than asked")


def test_fit_learns_a_separable_problem_and_records_every_epoch():

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
    optimiser_config = TrainConfig(
        "mlp", "mnist", {}, {}, optimizer=optimizer, lr=0.05, momentum=momentum, weight_decay=decay
    )
    opt = train.make_optimizer(optimiser_config, models.MLP(in_features=4, hidden=(3,)).parameters())
    assert type(opt) is cls and opt.defaults["lr"] == 0.05 and opt.defaults["weight_decay"] == decay
    if optimizer == "sgd":
        assert opt.defaults["momentum"] == 0.9


def test_one_cycle_warms_up_to_lr_then_anneals_once_a_batch():
    config = small_config(schedule="onecycle", lr=0.1, epochs=2)
    model = torch.nn.Linear(4, 2)
    optimizer = train.make_optimizer(config, model.parameters())
    scheduler = train.make_scheduler(config, optimizer, steps_per_epoch=10)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = max(range(20), key=lambda i: lrs[i])
    assert lrs[0] < 0.01 and abs(lrs[peak] - 0.1) < 1e-3 and 4 <= peak <= 7 and lrs[-1] < 1e-3
    assert train.make_scheduler(small_config(), optimizer, 10) is None


def test_distillation_loss_weighs_the_labels_against_the_teachers_softened_outputs():
    torch.manual_seed(0)
    logits, teacher, labels = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    hard = torch.nn.functional.cross_entropy(logits, labels)
    loss = functools.partial(train.distillation_loss, logits, teacher, labels, temperature=4.0)
    assert loss(weight=0.0) == pytest.approx(hard.item())
    soft = loss(weight=1.0).item()
    assert soft > 0 and loss(weight=0.5) == pytest.approx(0.5 * hard.item() + 0.5 * soft)
    same = train.distillation_loss(logits, logits, labels, weight=1.0, temperature=4.0)
    assert same.abs() < 1e-6, "a student that matches its teacher loses nothing"
    summed = train.distillation_loss(logits, teacher, labels, weight=0.7, temperature=2.0, reduction="sum")
    mean = train.distillation_loss(logits, teacher, labels, weight=0.7, temperature=2.0)
    assert summed == pytest.approx(8 * mean.item(), rel=1e-5)


def test_fit_distils_a_student_towards_its_teacher_and_leaves_the_teacher_as_it_was():
    torch.manual_seed(0)
    loader = synthetic_batches(n=4)
    teacher = models.MLP(in_features=20, hidden=(32,))
    train.fit(teacher, torch.optim.Adam(teacher.parameters(), lr=0.01), loader, 6, progress=False)
    teacher.train()  # fit must evaluate it in eval mode and give it back in this one
    saved = {k: v.clone() for k, v in teacher.state_dict().items()}

    def gap(student):
        x = torch.cat([x for x, _ in loader])
        with torch.no_grad():
            return (student(x).softmax(1) - teacher.eval()(x).softmax(1)).abs().sum(1).mean().item()

    students = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(1)
        student = models.MLP(in_features=20, hidden=(8,))
        loss = train.DistillationLoss(train.Distillation(teacher, "teacher", weight=weight, temperature=2.0))
        optimizer = torch.optim.Adam(student.parameters(), lr=0.01)
        train.fit(student, optimizer, loader, 6, progress=False, loss=loss)
        assert teacher.training
        students[weight] = gap(student)
        teacher.train()
    assert all(torch.equal(saved[k], v) for k, v in teacher.state_dict().items())
    assert students[1.0] < students[0.0], "distilled, the student's outputs come nearer the teacher's"


@pytest.mark.parametrize(
    ("weight", "temperature", "message"),
    [
        (1.5, 4.0, r"distill_weight=1.5 is out of range; allowed: 0 <= x <= 1"),
        (-0.1, 4.0, r"distill_weight=-0.1 is out of range"),
        (0.5, 0.0, r"distill_temperature=0.0 must be a finite number > 0"),
    ],
)
def test_a_bad_distillation_is_refused_naming_the_parameter(weight, temperature, message):
    net = models.MLP(in_features=20, hidden=(4,))
    distill = train.Distillation(models.MLP(in_features=20, hidden=(4,)), "t", weight, temperature)
    with pytest.raises(ValueError, match=message):
        loss = train.DistillationLoss(distill)
        train.fit(net, torch.optim.Adam(net.parameters()), synthetic_batches(), 1, progress=False, loss=loss)
