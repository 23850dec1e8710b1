"""The epoch-time script: the VGG-16 chapter's configuration trained from scratch, timed."""

import math

from netshrink.experiments import epoch_time


def test_epoch_seconds_trains_from_scratch_and_times_each_epoch():
    rows = epoch_time.epoch_seconds(width=0.0625, train_size=256, epochs=2, device="cpu", precision="auto")
    assert [row["epoch"] for row in rows] == [1, 2]
    assert all(row["seconds"] > 0 and math.isfinite(row["train_loss"]) for row in rows)
    assert all(row["seconds"] >= row["train_seconds"] > 0 for row in rows), "the epoch includes its training"
