"""Train the VGG-16 chapter's network into the model cache, on one process or, under torchrun,
on N data-parallel processes; the chapter then finds it in the cache and skips its training.

    torchrun --nproc-per-node 8 tools/train_vgg.py --profile full -p width 1.0 -p device cuda
    .venv/bin/python tools/train_vgg.py --profile smoke                 # one process

The configuration (and so the cache key) is the chapter's for that profile and those values,
whatever the number of processes; rank 0 alone writes the checkpoint and the model. Like a
notebook, this script wires the book's parameters to the experiment.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from netshrink import cache, data, devices, distributed, models
from netshrink.book import cells, parameters
from netshrink.book.chapters import VGG_CASE_STUDY
from netshrink.experiments import vgg_case_study as vc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="quick", help="smoke, quick (default) or full")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    try:
        known = VGG_CASE_STUDY.parameters("quick")
        given = {**VGG_CASE_STUDY.parameters(args.profile),
                 **{name: cells.read_value(name, text) for name, text in args.parameter}}  # fmt: skip
        p = parameters.check(VGG_CASE_STUDY.notebook, given, known)
        device = devices.resolve_device(p["device"])
        precision = devices.resolve_precision(p["precision"], device)
        distributed.init_from_env(device)
        distributed.check_batch(128, distributed.world()[1])  # the chapter's global batch
        distributed.check_model(models.vgg16(width=p["width"]).to(device), distributed.world()[1])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data_kwargs = vc.data_kwargs(p["val_size"], p["train_size"], p["test_size"], p["seed"])
    config = vc.vgg_config(
        width=p["width"], epochs=p["epochs"], lr=p["lr"], schedule=p["schedule"],
        label_smoothing=p["label_smoothing"], weight_decay=p["weight_decay"], dropout=p["dropout"],
        seed=p["seed"], data_kwargs=data_kwargs,
    )  # fmt: skip
    config = dataclasses.replace(config, precision=precision)
    splits = data.load_dataset("cifar10", **data_kwargs, augment=True)
    rank, world_size = distributed.world()
    result = cache.train_cached(config, splits=splits, device=device, progress=rank == 0)
    if rank == 0:
        print(f"{vc.network_name(p['width'])}: test accuracy {100 * result.test['acc']:.2f} % "
              f"({'from the cache' if result.cached else f'trained on {world_size} process(es)'}), "
              f"key {config.key()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
