"""Training: `TrainConfig` (what to train, and the cache key), `Recipe` (how: optimiser,
schedule, loss; the losses are `netshrink.losses`') and `fit` (the one training loop, no files).
`netshrink.cache` wraps `fit` with the cache of trained and fine-tuned models; `evaluate` is
`netshrink.metrics.evaluate`, the one evaluation loop."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from netshrink import data, devices, distributed, models
from netshrink.checks import check_int, finite  # train.finite: the check the experiments use
from netshrink.devices import autocast, in_memory_format, mode, model_device, to_device
from netshrink.keys import cache_key, key_fields
from netshrink.losses import CrossEntropy, Distillation, DistillationLoss, Loss, distillation_loss
from netshrink.metrics import evaluate  # the one evaluation loop; train.evaluate stays its public name
from netshrink.progress import tqdm
from netshrink.progress import training as report_epoch

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "TRAIN_PRECISIONS", "CrossEntropy", "Distillation", "DistillationLoss",
    "Recipe", "TrainConfig", "distillation_loss", "evaluate", "finite", "fit", "make_optimizer",
    "make_scheduler",
]  # fmt: skip

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "onecycle")
TRAIN_PRECISIONS = ("float32", "bfloat16")


@dataclass
class TrainConfig:
    """Everything that determines a trained model; its hash keys the cache.

    `data_kwargs` go to `data.load_dataset` (val_size, train_size, test_size, classes,
    augment, seed); `model_kwargs` to `models.build_model`.
    """

    model: str
    dataset: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "none"
    epochs: int = 5
    batch_size: int = 32
    seed: int = 0
    init: str | None = None  # key of stored initial weights (`store_init`); None: seeded random
    precision: str = "float32"  # "bfloat16": autocast of the forward pass (for a GPU)
    label_smoothing: float = 0.0  # of the training loss (evaluation is plain cross-entropy)

    def validate(self) -> TrainConfig:
        """Raise a ValueError naming the first bad parameter and its allowed values."""
        data.check_dataset(self.dataset)
        if self.model not in models.MODELS:
            raise ValueError(f"model={self.model!r} is not known; allowed values: {', '.join(models.MODELS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer={self.optimizer!r} is not known; allowed values: {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule={self.schedule!r} is not known; allowed values: {', '.join(SCHEDULES)}"
            )
        check_int("epochs", self.epochs, 0)
        check_int("batch_size", self.batch_size, 1)
        if not finite(self.lr) or not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} must be a finite positive number")
        for name in ("momentum", "weight_decay"):
            value = getattr(self, name)
            if not finite(value) or value < 0:
                raise ValueError(f"{name}={value!r} must be a finite number >= 0")
        if not finite(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing={self.label_smoothing!r} must be a number in [0, 1)")
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(
                f"precision={self.precision!r} is not known; allowed values: {', '.join(TRAIN_PRECISIONS)}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fields in a canonical JSON form (tuples as lists) that enter the key (`keys.key_fields`)."""
        return key_fields("training", json.loads(json.dumps(asdict(self), sort_keys=True)))

    def key(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON of the configuration (`keys.cache_key`)."""
        return cache_key(self.to_dict())

    def recipe(self, model: nn.Module, steps_per_epoch: int) -> Recipe:
        """The optimiser of `model`'s parameters, the schedule and the loss this configuration trains with."""
        optimizer = make_optimizer(self, model.parameters())
        scheduler = make_scheduler(self, optimizer, steps_per_epoch)
        return Recipe(optimizer, scheduler, self.schedule == "onecycle", CrossEntropy(self.label_smoothing))


@dataclass
class Recipe:
    """How a configuration trains: the optimiser, its learning-rate schedule (stepped once a batch
    when `per_batch`, else once an epoch) and the loss; `fit_kwargs` hands them to `fit`."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    per_batch: bool
    loss: Loss

    def fit_kwargs(self) -> dict[str, Any]:
        """`fit`'s scheduler, step_scheduler and loss."""
        per_epoch = None if self.per_batch else self.scheduler
        return {"scheduler": per_epoch, "step_scheduler": self.scheduler if self.per_batch else None,
                "loss": self.loss}  # fmt: skip


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """SGD with momentum, Adam (L2 weight decay, as the drafts' Keras/PyTorch code) or AdamW."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule of `config`: none; cosine (stepped once an epoch); or one-cycle
    (Smith & Topin 2019, stepped once a batch: warm-up to `lr` over the first 30 % of the steps,
    then annealing to lr / 10^4)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    if config.schedule == "onecycle":
        total = max(config.epochs * steps_per_epoch, 1)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    return None


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch  # one seed per epoch: a resumed run shuffles as an unbroken one


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable,
    epochs: int,
    *,
    val_loader: Iterable | None = None,
    test_loader: Iterable | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    seed: int = 0,
    start_epoch: int = 0,
    history: list[dict[str, float]] | None = None,
    on_epoch_end: Callable[[int, list[dict[str, float]]], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    precision: str = "float32",
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    loss: Loss | None = None,
) -> list[dict[str, float]]:
    """Train for `epochs` epochs (from `start_epoch`), one history row per epoch, on the model's
    device (batches follow the model): the one training loop, of training and fine-tuning alike.

    A row holds `epoch`, `train_loss` (of `loss`, default `CrossEntropy()`), `train_acc` (running
    over the epoch), `val_*` and `test_*` (when those loaders are given), `lr`, `train_seconds`
    (the training pass) and `seconds` (with the evaluation). `on_epoch_end(epoch, history)` is
    called after every epoch (the cache checkpoints there). `scheduler` steps once an epoch,
    `step_scheduler` once a batch (one-cycle). Distillation is a loss (`DistillationLoss`).

    Conv nets train in the channels-last memory format (oneDNN's and cuDNN's fast path: 1.4-1.7x
    per step on a 2-core CPU) and are returned in the default format. `precision="bfloat16"`
    runs the forward pass under bf16 autocast (for a GPU). The loop never waits for the device
    within an epoch. Under torchrun each process trains on its share of every global batch in
    DistributedDataParallel (`netshrink.distributed`); the history holds the global loss and
    accuracy on every rank.
    """
    device, fmt = _run_setup(model, train_loader)
    loss = loss if loss is not None else CrossEntropy()
    history = list(history or [])
    epoch_range = range(start_epoch, epochs)
    with loss.during(device, fmt), in_memory_format(model, fmt):
        net = distributed.wrap(model) if distributed.world()[1] > 1 else model
        bar = tqdm(epoch_range, desc=desc, disable=not progress, initial=start_epoch, total=epochs,
                   leave=False)  # fmt: skip
        for epoch in bar:
            start = time.perf_counter()
            row = _train_one_epoch(net, model, optimizer, train_loader, epoch, seed, fmt, precision, loss,
                                   step_scheduler)  # fmt: skip
            row["train_seconds"] = time.perf_counter() - start
            if scheduler is not None:
                scheduler.step()
            row |= _evaluated(model, {"val": val_loader, "test": test_loader})
            row["seconds"] = time.perf_counter() - start
            history.append(row)
            done = history[-(epoch + 1 - start_epoch) :]  # the epochs this call trained
            report_epoch(desc, epoch + 1, epochs, sum(r["seconds"] for r in done) / len(done))
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("train_loss", "val_acc")})
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, history)
    return history


def _run_setup(model: nn.Module, train_loader: Iterable) -> tuple[torch.device, torch.memory_format]:
    """`fit`'s checks of the data-parallel run, and the model's device and training memory format."""
    world_size = distributed.world()[1]
    if world_size > 1 and getattr(train_loader, "batch_size", None) is not None:
        distributed.check_batch(train_loader.batch_size, world_size)
    distributed.check_model(model, world_size)
    device = model_device(model)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device, torch.channels_last if devices.uses_conv(model) else torch.contiguous_format


def _evaluated(model: nn.Module, loaders: dict[str, Iterable | None]) -> dict[str, float]:
    """`<split>_loss` and `<split>_acc` of `model` on each loader given (None: skipped)."""
    row = {}
    for split, loader in loaders.items():
        if loader is not None:
            metrics = evaluate(model, loader)
            row[f"{split}_loss"], row[f"{split}_acc"] = metrics["loss"], metrics["acc"]
    return row


def _train_one_epoch(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    epoch: int,
    seed: int,
    fmt: torch.memory_format,
    precision: str,
    loss: Loss,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None,
) -> dict[str, float]:
    """Epoch `epoch` (from 0) of `fit`, seeded, `model` in train mode (`net`: it, or its DDP
    wrapper): the row's epoch, train_loss, train_acc and lr (before the epoch's scheduler step)."""
    torch.manual_seed(_epoch_seed(seed, epoch))
    if getattr(loader, "generator", None) is not None:
        loader.generator.manual_seed(_epoch_seed(seed, epoch))
    rank, world_size = distributed.world()
    with mode(model, training=True):
        try:
            train_loss, train_acc = _train_epoch(
                net, optimizer, loader, model_device(model), fmt, precision, loss, step_scheduler
            )
        except RuntimeError as err:
            if world_size == 1:
                raise
            raise distributed.PeerStopped(
                f"rank {rank} of {world_size}: the data-parallel run lost a process in epoch "
                f"{epoch + 1} ({' '.join(str(err).split())[:200]}); this rank stops too. Finished "
                f"epochs are in the checkpoint rank 0 writes: run again to resume"
            ) from err
    lr = optimizer.param_groups[0]["lr"]
    return {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "lr": lr}


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    device: torch.device,
    fmt: torch.memory_format,
    precision: str,
    loss_fn: Loss,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> tuple[float, float]:
    """One pass over `loader`: (mean training loss, training accuracy). Synchronises once, at the
    end. In a data-parallel run (`model` in DDP) each process takes its share of every batch and
    the loss and accuracy are those of the whole data set."""
    rank, world_size = distributed.world()
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    for x, y in loader:
        if len(y) == 0:  # an empty batch: a NaN mean loss, nothing to learn (the same on every rank)
            continue
        x, y = to_device((x, y), device)
        n_global = len(y)
        if world_size > 1:
            x, y = distributed.share(x, y, rank, world_size)
        if x.dim() == 4:
            x = x.contiguous(memory_format=fmt)
        with autocast(device, precision):
            logits = model(x)
        loss = loss_fn(logits.float(), x, y, "sum" if world_size > 1 else "mean")
        if world_size > 1:  # DDP averages over processes: the sum over the share / (global batch / N)
            rows = loss
            loss = rows * (world_size / n_global)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step_scheduler is not None:
            step_scheduler.step()
        total_loss += rows.detach().double() if world_size > 1 else loss.detach().double() * len(y)
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    if world_size > 1:
        total_loss, correct, count = distributed.all_sum(total_loss, correct, torch.tensor(n, device=device))
        n = int(count)
    if n == 0:
        raise ValueError("the training loader yielded no examples")
    return total_loss.item() / n, correct.item() / n
