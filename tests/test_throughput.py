"""Training throughput against the machine's matrix-multiply limit (numbers: `make bench`)."""

import dataclasses

import pytest
import torch
from torch import nn

from netshrink import train
from netshrink.experiments import throughput


def test_step_flops_counts_forward_and_backward_of_a_linear_layer():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    # forward 2*8*784*10, backward the same again: the weight's gradient (the input needs none)
    assert throughput.step_flops(model, x, y) == 2 * 2 * 8 * 784 * 10
    assert all(p.grad is None for p in model.parameters()), "the count leaves no gradient behind"


def test_training_gflops_times_the_configurations_own_step():
    config = train.TrainConfig("mlp", "mnist", {"hidden": [16]}, batch_size=4)
    row = throughput.training_gflops(config, steps=2, warmup=1)
    assert row["batch"] == 4 and row["GFLOP per step"] == pytest.approx(
        2 * 4 * (2 * 784 * 16 + 3 * 16 * 10) / 1e9  # the first layer needs no input gradient
    )
    assert row["GFLOP/s"] == pytest.approx(row["GFLOP per step"] * row["images/s"] / 4)
    with pytest.raises(ValueError, match=r"steps=0 is out of range; allowed: integers >= 1"):
        throughput.training_gflops(config, steps=0)


def test_every_model_the_chapters_train_is_in_the_table():
    names = throughput.chapter_configs()
    assert {c.model for c in names.values()} == {
        "mlp",
        "one_conv",
        "two_conv",
        "cifar_cnn",
        "conv4",
        "lenet",
        "vgg16",
    }
    table = throughput.throughput_table(
        {"MLP": train.TrainConfig("mlp", "mnist", {"hidden": [16]}, batch_size=4)}, steps=1, matmul_size=256
    )
    assert list(table.index) == ["MLP"] and table.attrs["limit"] > 0
    assert table.loc["MLP", "% of the matmul limit"] == pytest.approx(
        100 * table.loc["MLP", "GFLOP/s"] / table.attrs["limit"]
    )


def test_a_bfloat16_step_is_measured_against_the_bfloat16_limit():
    mlp = train.TrainConfig("mlp", "mnist", {"hidden": [16]}, batch_size=4)
    table = throughput.throughput_table(
        {"fp32": mlp, "bf16": dataclasses.replace(mlp, precision="bfloat16")}, steps=1, matmul_size=256
    )
    assert set(table.attrs["limits"]) == {"float32", "bfloat16"}
    assert list(table["precision"]) == ["float32", "bfloat16"]
    for name, precision in (("fp32", "float32"), ("bf16", "bfloat16")):
        assert table.loc[name, "% of the matmul limit"] == pytest.approx(
            100 * table.loc[name, "GFLOP/s"] / table.attrs["limits"][precision]
        )
    with pytest.raises(
        ValueError, match=r"precision='float16' is not known; allowed values: float32, bfloat16"
    ):
        throughput.matmul_gflops(size=8, precision="float16")


def test_matmul_gflops_is_the_best_of_its_repeats(monkeypatch):
    times = iter([0.0, 2.0, 2.0, 3.0, 3.0, 3.5])  # three products of 2, 1 and 0.5 seconds
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: next(times))
    assert throughput.matmul_gflops(size=8, repeats=3) == pytest.approx(2 * 8**3 / 0.5 / 1e9)
