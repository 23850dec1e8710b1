"""The week-6 network over several seeds (experiments.lenet_seeds): every seed's network trained,
decomposed and fine-tuned alike; the mean and the range one more seed's network would take."""

import json
import types

import pytest
import torch

from netshrink import models
from netshrink.experiments import lenet_seeds as ls
from netshrink.experiments import tensor_decomposition as td
from netshrink.findings import seed_spread

PLANS = {"our plan": {"conv2": ["tucker2", [8, 8]]}, "draft's plan": {"l2": ["tucker1", 30]}}


def _stubs():
    trained, tuned = [], []

    def train(config, splits):
        trained.append(config)
        return types.SimpleNamespace(
            model=models.LeNet(), test={"acc": 0.90 + config.seed / 100}, key=f"k{config.seed}"
        )

    def fine_tune(model, origin, splits, **kwargs):
        tuned.append((json.loads(origin)["model"], kwargs))
        acc = 0.80 + len(tuned) / 100
        return types.SimpleNamespace(model=model, test={"acc": acc}, before={"acc": acc - 0.1}, history=None)

    return train, fine_tune, trained, tuned


def test_every_seed_is_trained_decomposed_and_fine_tuned_alike():
    train, fine_tune, trained, tuned = _stubs()
    first_base = train(td.lenet_config(epochs=2, seed=5), splits=None)
    first = (
        first_base,
        td.decompose_and_fine_tune(first_base, None, PLANS, fine_tune, epochs=1, lr=0.01, seed=5),
    )
    per_seed = ls.lenet_over_seeds(first, train, None, PLANS, fine_tune, seeds=3, seed=5, epochs=2,
                                   finetune_epochs=1, lr=0.01, data_kwargs={"train_size": 10})  # fmt: skip
    assert [c.seed for c in trained] == [5, 6, 7] and trained[1].epochs == 2
    assert trained[1].data_kwargs == {"train_size": 10}
    assert [origin for origin, _ in tuned] == ["k5", "k5", "k6", "k6", "k7", "k7"]
    assert all(
        kwargs == {"epochs": 1, "lr": 0.01, "seed": s}
        for (_, kwargs), s in zip(tuned, [5, 5, 6, 6, 7, 7], strict=True)
    )
    assert per_seed["seed"].tolist() == [5, 5, 5, 6, 6, 6, 7, 7, 7]
    assert per_seed["model"].tolist()[:3] == ["original", "our plan, fine-tuned", "draft's plan, fine-tuned"]
    original = per_seed[per_seed["model"] == "original"]
    assert original["test accuracy"].tolist() == pytest.approx([0.95, 0.96, 0.97])
    summary = ls.seed_summary(per_seed)
    assert summary.loc["original", "seeds"] == 3
    assert summary.loc["original", "test accuracy"] == pytest.approx(0.96)
    low, high = summary.loc["original", ["accuracy range low", "accuracy range high"]]
    assert low < 0.95 and high > 0.97, "one more seed's range is wider than the seeds seen"
    found = td.lenet_findings(
        td.fine_tuned_table(
            first_base,
            first[1],
            torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
            batch_size=2,
            repeats=1,
        ),
        first[1],
        "MNIST",
        summary,
    )
    row = next(r for r in found.comparisons if r["quantity"].endswith("test accuracy after fine-tuning"))
    assert row["ours"] == pytest.approx(summary.loc["draft's plan, fine-tuned", "test accuracy"])
    assert row["spread"] > 0 and row["spread_what"] == "95 % range of one network over our 3 seeds"
    assert found.glue["lenet_seeds"] == 3 and found.glue["lenet_acc_mean"] == pytest.approx(96.0)


def test_bad_seeds_are_refused():
    train, fine_tune, *_ = _stubs()
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match=f"seeds={bad!r}"):
            ls.lenet_over_seeds(None, train, None, PLANS, fine_tune, seeds=bad, seed=0, epochs=1,
                                finetune_epochs=1, lr=0.01, data_kwargs={})  # fmt: skip


def test_seed_spread_is_half_the_range_and_nothing_for_one_seed():
    assert seed_spread(0.90, 0.96, 3, "network") == {
        "spread": pytest.approx(0.03),
        "spread_what": "95 % range of one network over our 3 seeds",
    }
    assert seed_spread(float("nan"), float("nan"), 1, "classifier") == {}
    assert seed_spread(0.9, 0.96, 1, "classifier") == {}
