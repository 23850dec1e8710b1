"""The cache of trained models: a configuration's hash names the folder
`<data root>/models/<key>/` that holds its weights; `train_cached` loads a finished model
instead of training, resumes an interrupted run from its last finished epoch and writes every
file atomically with a record of its checksum, configuration and data identity.
`fine_tune_cached` does the same for a fine-tuned copy of a model (`finetune.FineTuneConfig`):
both train by `train.fit`, through one resumable run (`_fit_resumably`)."""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from netshrink import data, distributed, models, paths, train
from netshrink.devices import model_device, resolve_device
from netshrink.finetune import FineTuneConfig
from netshrink.io import file_sha256, remove_stale, torch_save, write_json


@dataclass
class Trained:
    """A model after training or fine-tuning: its history (one row per epoch), final test
    metrics, cache key, and whether it came from the cache."""

    model: nn.Module
    history: pd.DataFrame
    test: dict[str, float]
    key: str
    cached: bool


@dataclass
class TrainResult(Trained):
    """A trained model, with its configuration, validation metrics and data set."""

    config: train.TrainConfig
    val: dict[str, float]
    dataset_label: str

    @property
    def n_parameters(self) -> int:
        return models.count_parameters(self.model)


def _init_path(key: str, root: Path | None = None) -> Path:
    return (Path(root) if root is not None else paths.data_root()) / "models" / "inits" / f"{key}.pt"


def store_init(model: nn.Module, root: Path | None = None) -> str:
    """Store `model`'s weights as initial weights for a TrainConfig's `init`; return their key
    (`_state_digest` of the tensors, checked again when they are loaded)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    key = _state_digest(state)
    path = _init_path(key, root)
    if not path.is_file():
        torch_save(path, state)
    return key


def _state_digest(state: dict[str, torch.Tensor]) -> str:
    """16 hex digits of the SHA-256 of a state dict's names, shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class CacheWarning(UserWarning):
    """A cached file was refused (damaged, or made from other data) and set aside."""


def _set_aside(path: Path, problem: str) -> None:
    """Move a refused cache file to `<name>.refused-<time>` and warn, naming both."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.refused-{stamp}")
    n = 1
    while aside.exists():  # two refusals in one second: never overwrite the first
        n += 1
        aside = path.with_name(f"{path.name}.refused-{stamp}-{n}")
    path.replace(aside)
    warnings.warn(
        f"{path}: {problem}; moved aside to {aside.name}, training again", CacheWarning, stacklevel=3
    )


def save_verified(path: Path, obj: dict[str, Any], record: dict[str, Any]) -> None:
    """`torch_save(path, obj)`, then `<path>.json` holding `record` and the file's SHA-256."""
    torch_save(path, obj)
    write_json(path.with_suffix(".json"), {**record, "sha256": file_sha256(path)})


def load_verified(path: Path, record: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
    """The object saved by `save_verified` at `path` when its checksum and its record match
    `record` (configuration, data identity); else None, the file set aside with a warning that
    names it. None also when there is no file."""
    if not path.is_file():
        return None
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict):  # missing, unreadable, or valid JSON that is no record ([1], null)
        _set_aside(path, f"no readable record {meta_path.name} to check it against")
        return None
    if meta.get("sha256") != file_sha256(path):
        _set_aside(path, f"the file does not match the SHA-256 in {meta_path.name} (damaged)")
        return None
    differs = sorted(k for k in record if json.dumps(meta.get(k), sort_keys=True, default=str)
                     != json.dumps(record[k], sort_keys=True, default=str))  # fmt: skip
    if differs:
        _set_aside(path, f"made with other {', '.join(differs)} than asked: {meta.get(differs[0])} "
                         f"instead of {record[differs[0]]}")  # fmt: skip
        return None
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is refused alike
        _set_aside(path, f"unreadable ({type(err).__name__}: {err})")
        return None


def _architecture_problem(model: nn.Module, state: Any) -> str | None:
    """Why `state` does not fit `model` (other tensor names or shapes); None when it fits."""
    own = model.state_dict()
    if not isinstance(state, dict):
        return f"holds {type(state).__name__} where a state dict belongs"
    wrong = sorted(own.keys() ^ state.keys()) or [
        k for k, t in own.items() if tuple(getattr(state[k], "shape", ())) != tuple(t.shape)
    ]
    if wrong:
        shape = tuple(getattr(state.get(wrong[0]), "shape", ())) if wrong[0] in state else "missing"
        return f"holds a model of another architecture ({wrong[0]}: {shape}; the model's: " + (
            f"{tuple(own[wrong[0]].shape)})" if wrong[0] in own else "none)"
        )
    return None


def load_into(model: nn.Module, saved: dict[str, Any] | None, path: Path) -> bool:
    """Load `saved["state_dict"]` (`load_verified(path, ...)`) into `model`: True; False when there
    is none or it is of another architecture (then `path` is set aside naming it, `model` untouched)."""
    if saved is None:
        return False
    problem = _architecture_problem(model, saved.get("state_dict") if isinstance(saved, dict) else saved)
    if problem:
        _set_aside(path, problem)
        return False
    model.load_state_dict(saved["state_dict"])
    return True


def check_splits(config: train.TrainConfig, splits: data.DataSplits) -> None:
    """Raise a ValueError when `splits` are not what `config.data_kwargs` ask for."""
    kw = config.data_kwargs
    asked = {"dataset": data.check_dataset(config.dataset), "n_val": kw.get("val_size", 5000),
             "seed": kw.get("seed", 0), "augment": kw.get("augment", False),
             "classes": list(kw["classes"]) if kw.get("classes") else None}  # fmt: skip
    if kw.get("train_size") is not None:
        asked["n_train"] = kw["train_size"]
    if kw.get("test_size") is not None:
        asked["n_test"] = kw["test_size"]
    got = splits.identity
    wrong = {k: (got.get(k), v) for k, v in asked.items() if got.get(k) != v}
    if wrong:
        said = ", ".join(f"{k}={g!r} (the configuration asks for {v!r})" for k, (g, v) in wrong.items())
        raise ValueError(f"splits do not match config {config.key()}: {said}")


def initial_model(
    config: train.TrainConfig, root: Path | None = None, device: torch.device | str = "cpu"
) -> nn.Module:
    """The model `config` starts training from, on `device`: seeded random weights (drawn on
    the CPU, so alike on every device), or the stored `init`."""
    config.validate()
    torch.manual_seed(config.seed)
    model = models.build_model(config.model, **config.model_kwargs)
    if config.init is not None:
        path = _init_path(config.init, root)
        if not path.is_file():
            raise FileNotFoundError(f"init={config.init!r}: no stored initial weights at {path}")
        try:
            state = torch.load(path, map_location="cpu")
        except Exception as err:  # noqa: BLE001 - name the file whatever failed
            raise ValueError(
                f"init={config.init!r}: cannot read {path} ({type(err).__name__}: {err})"
            ) from err
        if _state_digest(state) != config.init:
            raise ValueError(f"init={config.init!r}: {path} does not match its key (damaged); store it again")
        model.load_state_dict(state)
    return model.to(resolve_device(device))


def model_dir(config: train.TrainConfig | FineTuneConfig, root: Path | None = None) -> Path:
    """`<data root>/models/<config key>/` of a trained model; `.../models/finetune/<key>/` of a
    fine-tuned one."""
    folder = (Path(root) if root is not None else paths.data_root()) / "models"
    return (folder / "finetune" if isinstance(config, FineTuneConfig) else folder) / config.key()


def train_cached(
    config: train.TrainConfig,
    *,
    splits: data.DataSplits | None = None,
    root: Path | None = None,
    device: torch.device | str = "auto",
    progress: bool = True,
    eval_batch_size: int = 1000,
) -> TrainResult:
    """Train `config` on `device` (`auto`: CUDA when present) or load it from the cache; resume
    an interrupted run. The model is returned on `device`.

    Files under `model_dir(config)`: `config.json`, `checkpoint.pt` (after each epoch while
    training), `model.pt` (state dict, history and metrics, written once training ends). The
    configuration's precision is part of its key: a model trained in one precision is never
    loaded for another.
    """
    config.validate()
    device = resolve_device(device)
    if splits is None:
        splits = data.load_dataset(config.dataset, root=root, **config.data_kwargs)
    check_splits(config, splits)
    folder, key = model_dir(config, root), config.key()
    record = {"key": key, "config": config.to_dict(), "data": splits.identity}
    model = initial_model(config, root, device)
    saved = _cached(model, folder, record)
    if saved is not None:
        history, test, val = pd.DataFrame(saved["history"]), saved["test"], saved["val"]
        return TrainResult(model, history, test, key, True, config, val, splits.label)
    if distributed.is_main():  # in a data-parallel run, rank 0 alone writes
        write_json(folder / "config.json", {"key": key, **config.to_dict()})
    val_loader = data.make_loader(splits.val, eval_batch_size, device=device) if len(splits.val) else None
    test_loader = data.make_loader(splits.test, eval_batch_size, device=device)
    desc = f"{config.model} on {splits.label} (lr {config.lr:g}, key {key[:8]})"
    history, _ = _fit_resumably(
        config, model, splits.train, folder, record, val_loader, test_loader, progress=progress, desc=desc
    )
    model.eval()
    test = train.evaluate(model, test_loader)
    val = train.evaluate(model, val_loader) if val_loader else {"loss": math.nan, "acc": math.nan}
    state = {"state_dict": model.state_dict(), "history": history, "test": test, "val": val,
             "config": config.to_dict()}  # fmt: skip
    _save_final(folder, state, record)
    return TrainResult(model, pd.DataFrame(history), test, key, False, config, val, splits.label)


@dataclass
class FineTuned(Trained):
    """A compressed model after fine-tuning, with its test metrics before it too."""

    before: dict[str, float]


def fine_tune_cached(
    model: nn.Module,
    origin: str,
    splits: data.DataSplits,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    root: Path | None = None,
    progress: bool = True,
    eval_batch_size: int = 1000,
    precision: str = "float32",
    optimizer: str = "adam",
    label_smoothing: float = 0.0,
    distill: train.Distillation | None = None,
) -> FineTuned:
    """Fine-tune `model` (in place, on its device) by `FineTuneConfig(origin, splits.identity,
    epochs, ...)` (the other arguments: optimiser, smoothing, distillation, precision), or load
    the result from the cache; resume an interrupted run from its last finished epoch.

    `origin` must say everything that made `model` (for example the trained model's key and the
    decomposition plan); it keys the files under `model_dir(config)` together with the settings:
    `checkpoint.pt` (after each epoch, with the test metrics before fine-tuning), `model.pt`
    (written once it ends). `model` must be rebuilt the same way on a rerun.
    """
    config = FineTuneConfig(origin, splits.identity, epochs, lr=lr, batch_size=batch_size, seed=seed,
                            precision=precision, optimizer=optimizer, label_smoothing=label_smoothing,
                            distill=distill).validate()  # fmt: skip
    folder, key, device = model_dir(config, root), config.key(), model_device(model)
    record = {"key": key, "origin": origin, "data": splits.identity}
    saved = _cached(model, folder, record)
    if saved is not None:
        return FineTuned(model, pd.DataFrame(saved["history"]), saved["test"], key, True, saved["before"])
    test_loader = data.make_loader(splits.test, eval_batch_size, device=device)
    history, before = _fit_resumably(
        config, model, splits.train, folder, record, None, test_loader, progress=progress,
        desc=f"fine-tuning {key[:8]} on {splits.label}",
        measure_before=lambda: train.evaluate(model, test_loader),
    )  # fmt: skip
    model.eval()
    test = train.evaluate(model, test_loader)
    state = {"state_dict": model.state_dict(), "history": history, "before": before, "test": test,
             "origin": origin}  # fmt: skip
    _save_final(folder, state, record)
    return FineTuned(model, pd.DataFrame(history), test, key, False, before)


def _cached(model: nn.Module, folder: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """What `<folder>/model.pt` holds, its weights loaded into `model` (then in eval mode), when
    it matches `record`; else None. Rank 0 first removes what killed processes left in `folder`."""
    if distributed.is_main():
        remove_stale(folder)
    path = folder / "model.pt"
    saved = load_verified(path, record, model_device(model))
    if not load_into(model, saved, path):
        return None
    model.eval()
    return saved


def _fit_resumably(
    config: train.TrainConfig | FineTuneConfig,
    model: nn.Module,
    train_set: data.Dataset,
    folder: Path,
    record: dict[str, Any],
    val_loader: Iterable | None,
    test_loader: Iterable | None,
    *,
    progress: bool,
    desc: str,
    measure_before: Callable[[], dict[str, float]] | None = None,
) -> tuple[list[dict[str, float]], dict[str, float] | None]:
    """`train.fit` of `model` by `config` (its recipe, epochs, batch size, seed and precision) on
    `train_set`, resumed from `<folder>/checkpoint.pt` when that matches `record`, and written
    there after every epoch (by rank 0). Returns the history and the metrics `measure_before()`
    gave before the first epoch (kept in the checkpoint; fine-tuning's), or None without it."""
    device, path = model_device(model), folder / "checkpoint.pt"
    loader = data.make_loader(train_set, config.batch_size, shuffle=True, seed=config.seed, device=device)
    recipe = config.recipe(model, len(loader))
    start_epoch, history, before = 0, [], None
    ckpt = load_verified(path, record, device)
    if load_into(model, ckpt, path):
        recipe.optimizer.load_state_dict(ckpt["optimizer"])
        if recipe.scheduler is not None:
            recipe.scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, history, before = ckpt["epoch"], ckpt["history"], ckpt.get("before")
    elif measure_before is not None:
        before = measure_before()

    def checkpoint(epoch: int, hist: list[dict[str, float]]) -> None:
        scheduler = recipe.scheduler.state_dict() if recipe.scheduler is not None else None
        state = {"epoch": epoch, "history": hist, "state_dict": model.state_dict(),
                 "optimizer": recipe.optimizer.state_dict(), "scheduler": scheduler}  # fmt: skip
        save_verified(path, state if before is None else {**state, "before": before}, record)

    history = train.fit(
        model, recipe.optimizer, loader, config.epochs, val_loader=val_loader, test_loader=test_loader,
        seed=config.seed, start_epoch=start_epoch, history=history, progress=progress, desc=desc,
        on_epoch_end=checkpoint if distributed.is_main() else None, precision=config.precision,
        **recipe.fit_kwargs(),
    )  # fmt: skip
    return history, before


def _save_final(folder: Path, state: dict[str, Any], record: dict[str, Any]) -> None:
    """`<folder>/model.pt` holding `state` (`save_verified`, by rank 0 alone), the run's
    checkpoint removed."""
    if distributed.is_main():
        save_verified(folder / "model.pt", state, record)
        for name in ("checkpoint.pt", "checkpoint.json"):
            (folder / name).unlink(missing_ok=True)
