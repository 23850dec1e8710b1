"""Fine-tuning's configuration: `FineTuneConfig`, what fine-tunes a compressed model (and keys
it in the cache, `cache.fine_tune_cached`), trained by the one loop, `train.fit`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from netshrink.checks import check_int, finite
from netshrink.keys import cache_key, key_fields
from netshrink.losses import CrossEntropy, Distillation, DistillationLoss
from netshrink.train import TRAIN_PRECISIONS, Recipe

__all__ = ["FINE_TUNE_OPTIMIZERS", "SGD_FINE_TUNING", "SGD_FINE_TUNING_WORDS", "FineTuneConfig"]

FINE_TUNE_OPTIMIZERS = ("adam", "sgd")
# Fine-tuning by SGD (its rate annealed to zero by a cosine): the settings, and the words the
# pages describe them with, side by side so that they change together.
SGD_FINE_TUNING = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
SGD_FINE_TUNING_WORDS = "Nesterov momentum 0.9, weight decay 5e-4"


@dataclass
class FineTuneConfig:
    """Everything that determines a fine-tuned model; its hash keys the cache.

    `origin` must say everything that made the model (for example the trained model's key and
    the decomposition plan); `data` is the splits' identity (`DataSplits.identity`). `optimizer`:
    "adam" (Adam at a constant `lr`) or "sgd" (SGD with `SGD_FINE_TUNING`, `lr` annealed to zero
    over the epochs by a cosine). `distill`: learn from a teacher's outputs too (its name, weight
    and temperature join the key; weight 0 is plain fine-tuning, `teaching`).
    """

    origin: str
    data: dict[str, Any]
    epochs: int
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    precision: str = "float32"
    optimizer: str = "adam"
    label_smoothing: float = 0.0
    distill: Distillation | None = None

    def validate(self) -> FineTuneConfig:
        """Raise a ValueError naming the first bad parameter and its allowed values."""
        check_int("epochs", self.epochs, 0)
        check_int("batch_size", self.batch_size, 1)
        if not finite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr={self.lr!r} must be a finite positive number")
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(
                f"precision={self.precision!r} is not known; allowed values: {', '.join(TRAIN_PRECISIONS)}"
            )
        if self.optimizer not in FINE_TUNE_OPTIMIZERS:
            allowed = ", ".join(FINE_TUNE_OPTIMIZERS)
            raise ValueError(f"optimizer={self.optimizer!r} is not known; allowed values: {allowed}")
        if not finite(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing={self.label_smoothing!r} is out of range; allowed: 0 <= x < 1")
        if self.distill is not None:
            self.distill.validate()
        return self

    @property
    def teaching(self) -> Distillation | None:
        """`distill`, or None without one or at weight 0 (the same training, and the same key)."""
        return self.distill if self.distill is not None and self.distill.weight != 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The fields that enter the key (`keys.key_fields`), the teacher by its name, weight
        and temperature."""
        taught = self.teaching
        teacher = None if taught is None else {"teacher": taught.name, "weight": taught.weight,
                                               "temperature": taught.temperature}  # fmt: skip
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return key_fields("fine-tuning", {**values, "distill": teacher})

    def key(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON of the configuration (`keys.cache_key`)."""
        return cache_key(self.to_dict())

    def recipe(self, model: nn.Module, steps_per_epoch: int) -> Recipe:
        """The optimiser of `model`'s parameters, the schedule (cosine, once an epoch, for SGD)
        and the loss (`DistillationLoss` when `teaching`) this configuration fine-tunes with;
        `steps_per_epoch` goes unused (no schedule is stepped once a batch)."""
        scheduler = None
        if self.optimizer == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, **SGD_FINE_TUNING)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.epochs, 1))
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        taught = self.teaching
        loss = (CrossEntropy(self.label_smoothing) if taught is None
                else DistillationLoss(taught, self.label_smoothing, self.precision))  # fmt: skip
        return Recipe(optimizer, scheduler, False, loss)
