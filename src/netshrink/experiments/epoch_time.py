"""Seconds per training epoch of the VGG-16 chapter's own configuration, through `cache.train_cached`.

    python -m netshrink.experiments.epoch_time --device cuda                    # full width, 45,000 images
    python -m netshrink.experiments.epoch_time --device cpu --width 0.25 --train-size 5000 --epochs 2

Trains into a fresh temporary cache (so nothing is loaded from an earlier run) and prints one
line per epoch and the median of the training passes after the first (which pays for cuDNN's
autotuning and the data's move to the device). The data come from the usual data root or mirror.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

from netshrink import cache, data, devices
from netshrink.experiments.vgg_case_study import vgg_config


def epoch_seconds(
    width: float, train_size: int | None, epochs: int, device: str, precision: str
) -> list[dict[str, float]]:
    """Train the VGG-16 chapter's configuration for `epochs` and return its history rows."""
    dev = devices.resolve_device(device)
    config = vgg_config(width=width, epochs=epochs, data_kwargs={"val_size": 5000, "train_size": train_size})
    config = dataclasses.replace(config, precision=devices.resolve_precision(precision, dev))
    splits = data.load_dataset(config.dataset, **config.data_kwargs)
    with tempfile.TemporaryDirectory() as root:  # timed from scratch, never from the cache
        result = cache.train_cached(config, splits=splits, root=Path(root), device=dev)
    return result.history.to_dict("records")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=float, default=1.0, help="VGG-16 width multiplier (default 1)")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: all 45,000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="auto", help="auto, float32 or bfloat16")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs={args.epochs} must be at least 2 (the first epoch is a warm-up)")
    dev = devices.resolve_device(args.device)
    rows = epoch_seconds(args.width, args.train_size, args.epochs, args.device, args.precision)
    print(f"VGG-16 width {args.width} on {devices.describe(dev)}, "
          f"{devices.resolve_precision(args.precision, dev)}")  # fmt: skip
    for row in rows:
        print(f"epoch {row['epoch']}: training {row['train_seconds']:.2f} s, with evaluation "
              f"{row['seconds']:.2f} s, train acc {row['train_acc']:.3f}")  # fmt: skip
    median = statistics.median(r["train_seconds"] for r in rows[1:])
    print(f"median training seconds per epoch after the first: {median:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
