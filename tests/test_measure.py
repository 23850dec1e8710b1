"""`measure`: interleaved timing of calls and models."""

import pytest
import torch

from netshrink import measure, models


def test_time_calls_runs_each_call_in_turn_and_returns_its_last_result():
    order = []

    def call(name):
        def run():
            order.append(name)
            return len(order)

        return run

    seconds, results = measure.time_calls({"a": call("a"), "b": call("b")}, repeats=3, warmup=1)
    assert order == ["a", "b"] + ["a", "b"] * 3, "warm-up once each, then interleaved"
    assert set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())
    assert results == {"a": 7, "b": 8}


@pytest.mark.parametrize(
    ("repeats", "warmup", "message"),
    [
        (0, 0, r"repeats=0 is out of range; allowed: integers >= 1"),
        (1, -1, r"warmup=-1 is out of range; allowed: integers >= 0"),
    ],
)
def test_time_calls_refuses_bad_counts(repeats, warmup, message):
    with pytest.raises(ValueError, match=message):
        measure.time_calls({"a": lambda: None}, repeats=repeats, warmup=warmup)
    with pytest.raises(ValueError, match="calls must name at least one call"):
        measure.time_calls({})


def test_model_timing_restores_training_mode_and_needs_no_autograd():
    model = models.LeNet().train()
    table = measure.compare_latency({"net": model}, torch.rand(4, 1, 28, 28), repeats=2, warmup=1)
    assert model.training, "the model is given back in the mode it came in"
    assert table.loc["net", "speedup"] == 1.0 and table.loc["net", "parameters"] == 120_382


def test_time_images_refuses_bad_settings():
    named = {"net": models.LeNet()}
    images = torch.rand(8, 1, 28, 28)
    with pytest.raises(ValueError, match=r"batch_size=0 is out of range; allowed: integers >= 1"):
        measure.time_images(named, images, batch_size=0)
    with pytest.raises(ValueError, match=r"repeats=0 is out of range; allowed: integers >= 1"):
        measure.time_images(named, images, batch_size=4, repeats=0)
    with pytest.raises(ValueError, match="models must name at least one model"):
        measure.time_images({}, images, batch_size=4)
    seconds = measure.time_images(named, images, batch_size=3, repeats=2)  # batches of 3, 3 and 2
    assert list(seconds.index) == ["net"] and seconds["net"] > 0


class Sleeper(torch.nn.Module):
    """A model whose forward pass takes at least `delay` seconds, whatever the machine."""

    def __init__(self, delay):
        super().__init__()
        self.delay, self.w = delay, torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        import time

        time.sleep(self.delay)
        return x.flatten(1)[:, :10] * self.w


def test_time_images_times_the_whole_pass_over_every_batch():
    images = torch.rand(8, 1, 28, 28)
    seconds = measure.time_images(
        {"slow": Sleeper(0.02), "fast": Sleeper(0.0)}, images, batch_size=3, repeats=3
    )
    assert 3 * 0.02 <= seconds["slow"] < 3 * 0.02 + 0.5, "three batches of at least 20 ms each"
    assert seconds["fast"] < seconds["slow"] - 0.05


def test_side_by_side_counts_and_times_every_model_against_the_first():
    import torch
    from torch import nn

    from netshrink import measure

    big = nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 10))
    small = nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.ReLU(), nn.Linear(8, 10))
    table = measure.side_by_side({"big": big, "small": small}, torch.rand(20, 3, 4, 4), 10, repeats=2)
    assert list(table.index) == ["big", "small"]
    assert table.loc["big", "parameters"] == 48 * 64 + 64 + 64 * 10 + 10
    assert table.loc["small", "MFLOPs per image"] == pytest.approx(2 * (48 * 8 + 8 * 10) / 1e6)
    assert table.loc["big", "speedup"] == 1.0 and table.loc["big", "speedup, channels last"] == 1.0
    assert (table["seconds"] > 0).all() and (table["seconds, channels last"] > 0).all()
    assert table.loc["small", "speedup"] == pytest.approx(
        table.loc["big", "seconds"] / table.loc["small", "seconds"]
    )


def test_timing_note_names_the_device():
    from netshrink import measure

    assert measure.timing_note("cpu").startswith("CPU (")


def test_layers_are_timed_alone_on_the_input_the_batch_gives_them():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).eval()
    other = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).eval()
    x = torch.randn(4, 6)
    inputs = measure.layer_inputs(net, ["2"], x)
    assert torch.equal(inputs["2"], torch.relu(net[0](x)))
    assert not any(m._forward_pre_hooks for m in net.modules()), "the hooks are gone"
    seconds = measure.time_layers({"dense": net, "other": other}, ["0", "2"], x, repeats=2)
    assert list(seconds) == ["0", "2"] and all(list(s) == ["dense", "other"] for s in seconds.values())
    assert all(t > 0 for s in seconds.values() for t in s.values())
    assert 0 < measure.file_size(net[2]) < measure.file_size(net)


def test_time_repeats_keeps_every_repeats_seconds_in_order_and_the_last_result():
    calls = {"a": lambda: 1, "b": lambda: 2}
    times, results = measure.time_repeats(calls, repeats=4, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4} and results == {"a": 1, "b": 2}
    assert all(s >= 0 for v in times.values() for s in v)
    with pytest.raises(ValueError, match="calls must name"):
        measure.time_repeats({})
    with pytest.raises(ValueError, match="repeats"):
        measure.time_repeats(calls, repeats=0)


def test_time_images_runs_keeps_every_repeat_and_time_images_is_their_median():
    net = {"a": torch.nn.Linear(4, 2), "b": torch.nn.Linear(4, 3)}
    runs = measure.time_images_runs(net, torch.randn(10, 4), batch_size=5, repeats=3, warmup=0)
    assert runs.shape == (3, 2) and list(runs.columns) == ["a", "b"] and (runs > 0).all(axis=None)
    seconds = measure.time_images(net, torch.randn(10, 4), batch_size=5, repeats=3, warmup=0)
    assert seconds.name == "seconds" and list(seconds.index) == ["a", "b"]


def test_side_by_side_keeps_the_runs_its_medians_come_from():
    net = {"a": torch.nn.Linear(4, 2), "b": torch.nn.Linear(4, 3)}
    table = measure.side_by_side(net, torch.randn(10, 4), batch_size=5, repeats=3)
    runs = table.attrs["runs"]
    assert set(runs) == {"a", "b"} and all(len(v) == 3 for v in runs.values())
    assert table.loc["a", "seconds"] == sorted(runs["a"])[1]  # the median of three repeats
