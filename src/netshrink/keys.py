"""Cache keys: the one rule of which fields of a configuration (`train.TrainConfig`,
`finetune.FineTuneConfig`) enter its key, and the hash that makes the key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["CACHE_VERSION", "LEFT_OUT_AT_DEFAULTS", "cache_key", "key_fields"]

# Bump when a change of the training code invalidates cached models. 2: batched augmentation,
# channels-last training of conv nets, precision in the configuration.
CACHE_VERSION = 2

# Which fields enter a key: all of a configuration's, but for each group below while every field
# of the group holds the value shown. Each group came after models had been cached under keys
# without it; leaving it out at those values keeps their keys, and so the models, valid.
LEFT_OUT_AT_DEFAULTS: dict[str, tuple[dict[str, Any], ...]] = {
    "training": (
        {"init": None},  # seeded random initial weights: stored initial weights came later
        {"label_smoothing": 0.0},  # plain cross-entropy: label smoothing came later
    ),
    "fine-tuning": (
        {"optimizer": "adam", "label_smoothing": 0.0},  # SGD and label smoothing came in together
        {"distill": None},  # no teacher: distillation came later
    ),
}


def key_fields(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` of a configuration of `kind` ("training", "fine-tuning") less each group of
    `LEFT_OUT_AT_DEFAULTS[kind]` whose fields all hold the values given there."""
    kept = dict(fields)
    for group in LEFT_OUT_AT_DEFAULTS[kind]:
        if all(name in kept and kept[name] == value for name, value in group.items()):
            for name in group:
                del kept[name]
    return kept


def cache_key(fields: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON (sorted keys; what JSON cannot hold
    as its `str`) of `fields` (`key_fields`' choice) with `CACHE_VERSION` as "v"."""
    blob = json.dumps({"v": CACHE_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
