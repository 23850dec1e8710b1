"""Training: `TrainConfig` (what to train, and the cache key) and `fit` (the plain training loop,
no files). `netshrink.cache` wraps `fit` with the cache of trained models; `evaluate` is
`netshrink.metrics.evaluate`, the one evaluation loop."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from netshrink import data, devices, distributed, models
from netshrink.checks import check_int
from netshrink.devices import autocast, mode, model_device, to_device
from netshrink.metrics import evaluate  # the one evaluation loop; train.evaluate stays its public name
from netshrink.progress import tqdm
from netshrink.progress import training as report_epoch

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "onecycle")
TRAIN_PRECISIONS = ("float32", "bfloat16")
# Bump when a change of the training code invalidates cached models. 2: batched augmentation,
# channels-last training of conv nets, precision in the configuration.
CACHE_VERSION = 2


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
        d = json.loads(json.dumps(asdict(self), sort_keys=True))  # tuples -> lists, a canonical form
        if d["init"] is None:
            del d["init"]  # so that keys made before the field existed stay valid
        if d["label_smoothing"] == 0:
            del d["label_smoothing"]  # the same
        return d

    def key(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON of the configuration."""
        blob = json.dumps({"v": CACHE_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation (Hinton et al. 2015): the student learns the labels and `teacher`'s
    outputs softened by `temperature`, in the proportion 1 - `weight` : `weight`
    (`distillation_loss`). `name` identifies the teacher (its cache key) in the student's key."""

    teacher: nn.Module
    name: str
    weight: float = 0.9
    temperature: float = 4.0

    def validate(self) -> Distillation:
        """Raise a ValueError naming a weight outside [0, 1] or a temperature that is not > 0."""
        if not finite(self.weight) or not 0 <= self.weight <= 1:
            raise ValueError(f"distill_weight={self.weight!r} is out of range; allowed: 0 <= x <= 1")
        if not finite(self.temperature) or not self.temperature > 0:
            raise ValueError(f"distill_temperature={self.temperature!r} must be a finite number > 0")
        return self


def distillation_loss(
    logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight: float,
    temperature: float,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """(1 - weight) * cross-entropy(logits, labels) + weight * T^2 * KL(softmax(teacher / T) ||
    softmax(logits / T)), T the temperature (T^2 keeps the soft term's gradients at the scale of
    the hard one's). logits, teacher_logits: (N, C); labels: (N,); `reduction` "mean" or "sum"
    over the N rows."""
    hard = nn.functional.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction=reduction)
    soft = nn.functional.kl_div(
        nn.functional.log_softmax(logits / temperature, dim=1),
        nn.functional.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean" if reduction == "mean" else "sum",
        log_target=True,
    )
    return (1 - weight) * hard + weight * temperature**2 * soft


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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
    label_smoothing: float = 0.0,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    distill: Distillation | None = None,
) -> list[dict[str, float]]:
    """Train for `epochs` epochs (from `start_epoch`), one history row per epoch, on the model's
    device (batches follow the model).

    A row holds `epoch`, `train_loss`, `train_acc` (running over the epoch), `val_*` and
    `test_*` (when those loaders are given), `lr`, `train_seconds` (the training pass) and
    `seconds` (with the evaluation). `on_epoch_end(epoch, history)` is called after every epoch
    (the cache uses it to checkpoint). `scheduler` steps once an epoch, `step_scheduler` once a
    batch (one-cycle); `label_smoothing` applies to the training loss. With `distill` the loss is
    `distillation_loss` against the teacher's outputs (the teacher in eval mode, on the model's
    device); `train_loss` is then that loss.

    Conv nets train in the channels-last memory format (oneDNN's and cuDNN's fast path: 1.4-1.7x
    per step on a 2-core CPU) and are returned in the default format. `precision="bfloat16"`
    runs the forward pass under bf16 autocast (for a GPU). The loop never waits for the device
    within an epoch: the running loss and accuracy stay on it until the epoch ends.

    Under torchrun (a process group joined, `distributed.init_from_env`) each process trains on
    its share of every global batch in DistributedDataParallel (`netshrink.distributed`); the
    history holds the global loss and accuracy on every rank.
    """
    rank, world_size = distributed.world()
    if world_size > 1 and getattr(train_loader, "batch_size", None) is not None:
        distributed.check_batch(train_loader.batch_size, world_size)
    distributed.check_model(model, world_size)
    device = model_device(model)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    fmt = torch.channels_last if devices.uses_conv(model) else torch.contiguous_format
    teacher = None
    if distill is not None:
        teacher = distill.validate().teacher
        if model_device(teacher) != device:
            raise ValueError(
                f"distill.teacher is on {model_device(teacher)} but the model on {device}: move it there"
            )
    history = list(history or [])
    bar = tqdm(
        range(start_epoch, epochs),
        desc=desc,
        disable=not progress,
        initial=start_epoch,
        total=epochs,
        leave=False,
    )
    try:
        model.to(memory_format=fmt)
        if teacher is not None:
            teacher.to(memory_format=fmt)
        net = distributed.wrap(model) if world_size > 1 else model
        for epoch in bar:
            torch.manual_seed(_epoch_seed(seed, epoch))
            if getattr(train_loader, "generator", None) is not None:
                train_loader.generator.manual_seed(_epoch_seed(seed, epoch))
            start = time.perf_counter()
            with mode(model, training=True), _eval_mode(teacher):
                try:
                    train_loss, train_acc = _train_epoch(
                        net,
                        optimizer,
                        train_loader,
                        device,
                        fmt,
                        precision,
                        label_smoothing,
                        step_scheduler,
                        distill,
                    )
                except RuntimeError as err:
                    if world_size == 1:
                        raise
                    raise distributed.PeerStopped(
                        f"rank {rank} of {world_size}: the data-parallel run lost a process in epoch "
                        f"{epoch + 1} ({' '.join(str(err).split())[:200]}); this rank stops too. Finished "
                        f"epochs are in the checkpoint rank 0 writes: run again to resume"
                    ) from err
            row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                   "lr": optimizer.param_groups[0]["lr"],
                   "train_seconds": time.perf_counter() - start}  # fmt: skip
            if scheduler is not None:
                scheduler.step()
            for split, loader in (("val", val_loader), ("test", test_loader)):
                if loader is not None:
                    metrics = evaluate(model, loader)
                    row[f"{split}_loss"], row[f"{split}_acc"] = metrics["loss"], metrics["acc"]
            row["seconds"] = time.perf_counter() - start
            history.append(row)
            done = history[-(epoch + 1 - start_epoch) :]  # the epochs this call trained
            report_epoch(desc, epoch + 1, epochs, sum(r["seconds"] for r in done) / len(done))
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("train_loss", "val_acc")})
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, history)
    finally:
        model.to(memory_format=torch.contiguous_format)
        if teacher is not None:
            teacher.to(memory_format=torch.contiguous_format)
    return history


def _eval_mode(teacher: nn.Module | None):
    """The teacher in eval mode for the block (nothing to do without one)."""
    return mode(teacher, training=False) if teacher is not None else contextlib.nullcontext()


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    device: torch.device,
    fmt: torch.memory_format,
    precision: str,
    label_smoothing: float = 0.0,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    distill: Distillation | None = None,
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
        reduction = "sum" if world_size > 1 else "mean"
        if distill is None:
            loss = nn.functional.cross_entropy(
                logits.float(), y, label_smoothing=label_smoothing, reduction=reduction
            )
        else:
            with torch.no_grad(), autocast(device, precision):
                teacher_logits = distill.teacher(x)
            loss = distillation_loss(
                logits.float(), teacher_logits.float(), y, weight=distill.weight,
                temperature=distill.temperature, label_smoothing=label_smoothing, reduction=reduction,
            )  # fmt: skip
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
