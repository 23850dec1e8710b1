"""Where a long run is, for another process to read: a small JSON status file; and the
progress bar class (`tqdm`) that training loops use.

A chapter runs in a Jupyter kernel whose progress bars go into the notebook, not to the console.
The runner names a status file in `$NETSHRINK_STATUS`; `update` writes the current stage, model,
epoch and time left into it (atomically), and the runner (or `runner --status`) prints it. With
no `$NETSHRINK_STATUS` nothing is written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netshrink.io import write_json

__all__ = ["ENV", "describe", "listen_for_models", "model_trained", "read", "tqdm", "training", "update"]

ENV = "NETSHRINK_STATUS"


def _bar_class() -> type:
    """tqdm's notebook bar where ipywidgets is installed, else its plain text bar: the notebook
    bar without ipywidgets warns `TqdmWarning: IProgress not found` on every bar, which no user
    of a chapter run can act on (its bars go into the notebook's stderr, not onto a page)."""
    try:
        import ipywidgets  # noqa: F401 - only whether it is there
    except ImportError:
        from tqdm.std import tqdm as plain

        return plain
    from tqdm.auto import tqdm as auto

    return auto


tqdm = _bar_class()


def _cell() -> int | None:
    """The execution count of the running notebook cell, when inside IPython (whose counter
    already holds the next cell's while a cell runs)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        return None
    shell = get_ipython()
    count = getattr(shell, "execution_count", None) if shell is not None else None
    return count - 1 if isinstance(count, int) and count > 1 else count


def update(**fields: Any) -> None:
    """Merge `fields` into the status file named by `$NETSHRINK_STATUS` (stage, model, epoch,
    epochs, seconds_left, ...), with the time and the notebook cell. A no-op without it."""
    target = os.environ.get(ENV)
    if not target:
        return
    path = Path(target)
    status = read(path) or {}
    if "stage" in fields:  # a new stage: the previous model's epochs no longer apply
        for key in ("model", "epoch", "epochs", "seconds_left"):
            status.pop(key, None)
    status.update(fields, updated=time.time(), cell=_cell(), pid=os.getpid())
    write_json(path, status)


def training(model: str, epoch: int, epochs: int, seconds_per_epoch: float) -> None:
    """Report a training loop's place: `epoch` of `epochs` done at `seconds_per_epoch`."""
    update(model=model, epoch=epoch, epochs=epochs,
           seconds_left=round(max(epochs - epoch, 0) * seconds_per_epoch, 1))  # fmt: skip


_MODEL_LISTENERS: list[Callable[[str, float], None]] = []


def listen_for_models(listener: Callable[[str, float], None] | None) -> None:
    """Have `listener(what, training_seconds)` hear of every model trained outside the cache
    (`model_trained`), in place of any listener before; None: no one listens. A chapter's run
    listens, so that such models reach its `models.json` beside those the cache keeps."""
    _MODEL_LISTENERS[:] = [] if listener is None else [listener]


def model_trained(what: str, seconds: float) -> None:
    """Announce a model trained outside the cache (e.g. a classifier of derived features)."""
    for listener in _MODEL_LISTENERS:
        listener(what, seconds)


def read(path: Path | str) -> dict[str, Any] | None:
    """The status in `path`, or None when there is none (or it cannot be read)."""
    try:
        status = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def describe(status: dict[str, Any], n_cells: int | None = None) -> str:
    """One line: 'cell 7/20 · stage · training MODEL epoch 3/15, 4.2 min left · 12 s ago'."""
    parts = []
    if status.get("cell") is not None:
        parts.append(f"cell {status['cell']}" + (f"/{n_cells}" if n_cells else ""))
    if status.get("stage"):
        parts.append(str(status["stage"]))
    if status.get("model") is not None:
        text = f"training {status['model']} epoch {status.get('epoch')}/{status.get('epochs')}"
        if status.get("seconds_left") is not None:
            text += f", {status['seconds_left'] / 60:.1f} min left for it"
        parts.append(text)
    if status.get("updated"):
        parts.append(f"updated {time.time() - status['updated']:.0f} s ago")
    return " · ".join(parts) or "starting"
