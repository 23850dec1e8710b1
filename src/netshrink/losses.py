"""The training losses of `train.fit`: `CrossEntropy` (the default) and `DistillationLoss`
(knowledge distillation from a teacher, `Distillation`). A loss is called on a batch as
`loss(logits, x, labels, reduction)` and gives `during(device, fmt)` what it needs around the
epochs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from netshrink.checks import finite
from netshrink.devices import autocast, in_memory_format, mode, model_device

__all__ = ["CrossEntropy", "Distillation", "DistillationLoss", "Loss", "distillation_loss"]


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


@dataclass(frozen=True)
class CrossEntropy:
    """`fit`'s default loss: cross-entropy of the logits (N, C) against the labels (N,), with
    `label_smoothing`; `reduction` "mean" or "sum" over the N rows (the inputs x go unused)."""

    label_smoothing: float = 0.0

    def __call__(self, logits: Tensor, x: Tensor, labels: Tensor, reduction: str) -> Tensor:
        return nn.functional.cross_entropy(
            logits, labels, label_smoothing=self.label_smoothing, reduction=reduction
        )

    def during(self, device: torch.device, fmt: torch.memory_format) -> contextlib.AbstractContextManager:
        """What the loss needs around `fit`'s epochs on `device`, inputs in `fmt`: nothing."""
        return contextlib.nullcontext()


@dataclass(frozen=True)
class DistillationLoss:
    """`distillation_loss` of the logits (N, C) against `distill.teacher`'s for the same inputs x,
    which it computes without gradients under `precision` autocast (the student's). During
    `fit`'s epochs the teacher is in eval mode and the inputs' memory format; it must be on the
    student's device."""

    distill: Distillation
    label_smoothing: float = 0.0
    precision: str = "float32"

    def __post_init__(self) -> None:
        self.distill.validate()

    def __call__(self, logits: Tensor, x: Tensor, labels: Tensor, reduction: str) -> Tensor:
        with torch.no_grad(), autocast(x.device, self.precision):
            teacher_logits = self.distill.teacher(x)
        return distillation_loss(
            logits, teacher_logits.float(), labels, weight=self.distill.weight,
            temperature=self.distill.temperature, label_smoothing=self.label_smoothing, reduction=reduction,
        )  # fmt: skip

    @contextlib.contextmanager
    def during(self, device: torch.device, fmt: torch.memory_format) -> Iterator[None]:
        """The teacher in eval mode and memory format `fmt` for the block; refused off `device`."""
        teacher = self.distill.teacher
        if model_device(teacher) != device:
            raise ValueError(
                f"distill.teacher is on {model_device(teacher)} but the model on {device}: move it there"
            )
        with mode(teacher, training=False), in_memory_format(teacher, fmt):
            yield


Loss = CrossEntropy | DistillationLoss
