"""What a chapter is: its notebook, report items and parameters per profile (`Chapter`), and
what its first cell sets up (`ChapterRun`). The book's chapters are in `chapters.py`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netshrink import allocator, cache, devices, paths, train
from netshrink.book import parameters, standalone
from netshrink.book.report import Report, check_profile
from netshrink.data import DataSplits
from netshrink.io import write_json
from netshrink.progress import listen_for_models as report_models
from netshrink.progress import update as report_progress

# Every chapter's device and precision parameters: these defaults, unless a profile sets its own
# (the full VGG-16 trains in bfloat16 where the CPU computes it in hardware).
RUNTIME = {"device": "auto", "precision": "auto"}
# Beside a run's results while it goes: every model it trained or took from the cache (the
# runner moves the list into the provenance record).
MODELS_RECORD = "models.json"
# Plain values IPython keeps in a notebook's globals: not parameters, never strays.
_NOTEBOOK_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
_PLAIN = (bool, int, float, str, list, tuple, dict, type(None))


@dataclass
class ChapterRun:
    """What a chapter's first cell sets up: its report, the device it computes on and the
    training precision, chosen once. `train` and `fine_tune` use them for every model."""

    report: Report
    device: torch.device
    precision: str
    params: dict[str, Any]
    models: list[dict[str, Any]] = field(default_factory=list)

    def train(self, config: train.TrainConfig, **kwargs: Any) -> cache.TrainResult:
        """`cache.train_cached` of `config` in this run's precision, on this run's device."""
        config = dataclasses.replace(config, precision=self.precision)
        report_progress(stage=f"training {config.model} on {config.dataset}")
        result = cache.train_cached(config, device=self.device, **kwargs)
        return self._noted(f"{config.model} on {config.dataset}", result)

    def fine_tune(self, model: nn.Module, origin: str, splits: DataSplits, **kwargs: Any) -> cache.FineTuned:
        """`cache.fine_tune_cached` of `model` (moved to this run's device) in this run's precision."""
        report_progress(stage=f"fine-tuning on {splits.label}")
        result = cache.fine_tune_cached(
            model.to(self.device), origin, splits, precision=self.precision, **kwargs
        )
        return self._noted(f"fine-tuning on {splits.label}", result)

    def _trained_outside_the_cache(self, what: str, seconds: float) -> None:
        """Record a model an experiment trained without the cache (it has no key)."""
        self._record({"model": what, "key": None, "from cache": False, "training seconds": round(seconds, 1)})

    def _record(self, entry: dict[str, Any]) -> None:
        self.models.append(entry)
        write_json(self.report.dir / MODELS_RECORD, self.models)

    def _noted(self, what: str, result: cache.Trained) -> Any:
        """`result`, recorded in `models.json` beside the results: its key, whether it came from
        the cache and the seconds its training took (when it was made), so that the provenance
        can say how much of a chapter's work an earlier run did."""
        seconds = float(result.history["seconds"].sum()) if "seconds" in result.history else 0.0
        self._record(
            {
                "model": what,
                "key": result.key,
                "from cache": result.cached,
                "training seconds": round(seconds, 1),
            }
        )
        return result

    @property
    def note(self) -> str:
        """'CPU (2 threads), float32', for prose and captions."""
        return f"{devices.describe(self.device)}, {self.precision}"


@dataclass(frozen=True)
class Chapter:
    """A chapter: `name` (its results folder), `notebook` (path from the project root),
    the report `items` it must produce, and its parameters per profile."""

    name: str
    notebook: str
    title: str
    items: tuple[str, ...]
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def parameters(self, profile: str) -> dict[str, Any]:
        """The papermill parameters of this chapter in `profile` (`profile` included)."""
        check_profile(profile)
        values = self.profiles[profile]
        chosen = {name: value for name, value in values.items() if name not in RUNTIME}
        runtime = {name: values.get(name, default) for name, default in RUNTIME.items()}
        return {"profile": profile, **chosen, **runtime}  # the runtime pair last, as in the cells

    def collect(self, namespace: dict[str, Any]) -> dict[str, Any]:
        """This chapter's parameters in `namespace` (a notebook's `globals()`), checked by
        `parameters.check` under the notebook's names. A plain value (number, string, list,
        mapping) in `namespace` that is no parameter is an error: papermill injects a misspelt
        `-p NAME` as a new variable and only warns."""
        known = self.parameters("quick")
        missing = [name for name in known if name not in namespace]
        if missing:
            raise ValueError(f"{self.notebook}'s parameters cell lacks {missing}")
        strays = {name: value for name, value in namespace.items()
                  if name not in known and not name.startswith("_") and name not in _NOTEBOOK_NAMES
                  and isinstance(value, _PLAIN)}  # fmt: skip
        given = {name: namespace[name] for name in known}
        return parameters.check(self.notebook, {**given, **strays}, known)

    def start(self, namespace: dict[str, Any], *, display: bool = True) -> ChapterRun:
        """Set a chapter up from its notebook's parameters (`globals()`) before any work: check
        every value (`parameters.check`; converted values are written back into `namespace`),
        resolve the device (`auto`: CUDA when present) and the precision (`auto`: bfloat16 on
        CUDA, float32 on the CPU; `devices.resolve_precision`), and open the report, whose
        parameters and captions name both. The kernel keeps freed memory for reuse
        (`allocator.keep_freed_memory`). Outside the runner the report writes into a fresh
        folder, published when the run succeeded (`standalone`)."""
        params = self.collect(namespace)
        namespace.update(params)
        allocator.keep_freed_memory()
        device = devices.resolve_device(params["device"])
        precision = devices.resolve_precision(params["precision"], device)
        results = None
        if not standalone.staged_by_runner():  # plain papermill or Jupyter: publish when done
            results = standalone.staging_root(self.name)
            last = standalone.last_code_cell(paths.project_root() / self.notebook)
            standalone.PublishAtExit(
                self.name, params["profile"], results, paths.results_root(), last, self.items
            )
        report = Report(self.name, params["profile"], params, root=results, display=display,
                        run_note=f"{devices.describe(device)}, {precision}")  # fmt: skip
        run = ChapterRun(report, device, precision, params)
        report_models(run._trained_outside_the_cache)
        return run

    @property
    def stem(self) -> str:
        return Path(self.notebook).stem
