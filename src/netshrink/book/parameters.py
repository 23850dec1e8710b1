"""The rules every chapter parameter must follow, checked before any work.

One `Rule` per parameter name (names mean the same in every chapter). `check` converts what
can be converted without guessing (a numpy integer to an int, an int to a float) and raises a
ValueError naming the chapter's notebook parameter, the value given and what is allowed:
a string where a number belongs is refused, never parsed.
"""

from __future__ import annotations

import difflib
import math
import numbers
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from netshrink import models
from netshrink.book.report import PROFILES
from netshrink.compress import decompose
from netshrink.compress.decompose import CONV_METHODS
from netshrink.data import DATASETS, SPLIT_SIZES
from netshrink.devices import DEVICES, PRECISIONS
from netshrink.finetune import FINE_TUNE_OPTIMIZERS
from netshrink.train import SCHEDULES

MAX_VALUE_CHARS = 4096  # a `-p` value's text: plans and lists are a few hundred characters
_REPR = reprlib.Repr()  # Python 3.11 takes no keywords here
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def shown(value: Any, limit: int = 240) -> str:
    """`repr(value)` for an error message, cut short: nested and long values (a 20 KB string, a
    YAML alias bomb's shared lists) cost little and print one short line."""
    text = " ".join(_REPR.repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_yaml(name: str, text: str) -> Any:
    """The YAML value of `-p NAME TEXT`, after cheap checks of the raw text: at most
    `MAX_VALUE_CHARS` characters, no anchors or aliases (`&a`, `*a`: an alias bomb of a few
    hundred bytes expands to gigabytes); a ValueError naming `-p NAME` otherwise."""
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(
            f"-p {name}: the value has {len(text):,} characters; allowed: at most {MAX_VALUE_CHARS:,}"
        )
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValueError(f"-p {name} {shown(text, 80)}: YAML anchors and aliases (& and *) are not "
                                 "allowed; allowed: plain numbers, strings, lists and mappings")  # fmt: skip
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"-p {name} {shown(text, 80)}: not a number, YAML list, mapping or string "
                         f"({shown(str(err), 160)[1:-1]})") from None  # fmt: skip


_KINDS = {"int": "an integer", "float": "a finite number", "str": "a string", "dict": "a mapping"}


@dataclass(frozen=True)
class Rule:
    """`kind`: int, float, str, dict, or list of int/float/str (`list[int]`...). Numbers lie in
    [low, high] (`low_open`: low excluded); strings (or list items) among `choices`; None is
    allowed when `optional` (for sizes: the whole set)."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    min_items: int = 1

    def describe(self) -> str:
        if self.choices:
            what = "one of " + ", ".join(map(str, self.choices))
        else:
            what = _KINDS.get(self.kind, f"a list of {self.kind[5:-1]}s")
        if self.low is not None or self.high is not None:
            low = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
            high = "" if self.high is None else f"<= {self.high:g}"
            what += " " + " and ".join(p for p in (low, high) if p)
        if self.kind.startswith("list") and self.choices:
            what = "a list of " + what
        return what + (", or None" if self.optional else "")


def _int(**kw: Any) -> Rule:
    return Rule("int", **kw)


COUNT = _int(low=1)  # a positive count
EPOCHS = _int(low=0)
SIZE = _int(low=1, optional=True)  # None: every example
POSITIVE = Rule("float", low=0, low_open=True)
NON_NEGATIVE = Rule("float", low=0)
FRACTION = Rule("float", low=0, high=1)

RULES: dict[str, Rule] = {
    "profile": Rule("str", choices=PROFILES),
    "device": Rule("str", choices=DEVICES),
    "precision": Rule("str", choices=PRECISIONS),
    "seed": _int(low=0, high=2**32 - 1),  # numpy's generators take 32-bit seeds
    "val_size": _int(low=0),
    # sizes of data subsets
    **dict.fromkeys(
        [
            "train_size",
            "test_size",
            "mnist_train_size",
            "mnist_test_size",
            "cifar_train_size",
            "cifar_test_size",
            "mlp3_train_size",
            "cnn_train_size",
            "cnn_test_size",
            "input_train_size",
            "lenet_train_size",
        ],
        SIZE,
    ),  # fmt: skip
    # epochs and rounds (0 is allowed: evaluate without training)
    **dict.fromkeys(
        [
            "epochs",
            "mlp_epochs",
            "one_conv_epochs",
            "two_conv_epochs",
            "cifar_epochs",
            "cifar_lr_epochs",
            "cifar_aug_epochs",
            "mlp3_epochs",
            "cnn_epochs",
            "input_epochs",
            "lenet_epochs",
            "finetune_epochs",
            "k_finetune_epochs",
            "method_finetune_epochs",
            "peer_finetune_epochs",
            "rewind_rounds",
        ],
        EPOCHS,
    ),  # fmt: skip
    # positive counts
    **dict.fromkeys(
        [
            "hidden",
            "batch_size",
            "n_networks",
            "mlp3_seeds",
            "input_seeds",
            "lenet_seeds",
            "n_trials",
            "shrink_runs",
            "shrink_networks",
            "init_networks",
            "bench_masks",
            "bench_repeats",
            "latency_batch",
            "latency_repeats",
            "cnn_importance_size",
            "time_batch",
            "time_repeats",
            "cifar_time_images",
            "cifar_time_batch",
            "sensitivity_size",
            "btd_blocks",
            "channel_multiple",
        ],
        COUNT,
    ),  # fmt: skip
    "n_values": Rule("list[int]", low=1),
    "shrink_n_values": Rule("list[int]", low=1),
    "mlp3_hidden": Rule("list[int]", low=1),
    "batch_sizes": Rule("list[int]", low=1),
    "tucker_ranks": Rule("list[int]", low=1),
    "recon_ranks": Rule("list[int]", low=1),
    "ks": Rule("list[int]", low=1, high=8),
    "dropouts": Rule("list[float]", low=0, high=0.99),
    "cnn_fractions": Rule("list[float]", low=0, high=0.99),
    "prune_rates": Rule("list[float]", low=0, high=0.99),
    "sensitivity_rates": Rule("list[float]", low=0, high=0.99),
    "peer_ratios": Rule("list[float]", low=0, low_open=True, high=0.99),  # vgg_peers: Torch-Pruning's ratios
    "cnn_layers": Rule("list[str]", choices=("conv1", "conv2", "conv3", "conv4", "fc")),
    "methods": Rule("list[str]", choices=CONV_METHODS),
    "cnn_dataset": Rule("str", choices=("mnist", "fashion-mnist")),
    "tol": NON_NEGATIVE,
    "prune_tol": NON_NEGATIVE,
    "target_speedup": Rule("float", low=1),
    "tucker_layers": Rule("str", choices=("all", "faster")),  # vgg_case_study.TUCKER_LAYERS (a test)
    "important": NON_NEGATIVE,
    "rank_budget": NON_NEGATIVE,
    "rewind_tol": NON_NEGATIVE,
    "cnn_tol": NON_NEGATIVE,
    "lr": POSITIVE,
    "finetune_lr": POSITIVE,
    "finetune_optimizer": Rule("str", choices=FINE_TUNE_OPTIMIZERS),
    "width": Rule("float", low=0, high=1, low_open=True),
    "budget_fraction": Rule("float", low=0, high=1, low_open=True),
    "max_rate": Rule("float", low=0, high=0.99),
    "tucker_rule": Rule("str", choices=("vbmf",)),  # or an energy fraction: see _check_rank_rule
    "lenet_plan": Rule("dict"),
    "schedule": Rule("str", choices=SCHEDULES),
    "label_smoothing": Rule("float", low=0, high=0.99),
    "weight_decay": NON_NEGATIVE,
    "dropout": Rule("float", low=0, high=0.99),
    "distill_weight": Rule("float", low=0, high=1),
    "distill_temperature": POSITIVE,
}
assert set(RULES["cnn_dataset"].choices) <= set(DATASETS)


def _number(name: str, value: Any, rule: Rule) -> int | float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={shown(value)} must be {rule.describe()}")
    if rule.kind.endswith("int") or rule.kind == "int":
        if not isinstance(value, numbers.Integral):
            raise ValueError(f"{name}={shown(value)} must be {rule.describe()}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name}={shown(value)} must be {rule.describe()}")
    too_low = rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low)
    if too_low or (rule.high is not None and value > rule.high):
        raise ValueError(f"{name}={shown(value)} is out of range; allowed: {rule.describe()}")
    return value


def _string(name: str, value: Any, rule: Rule) -> str:
    if not isinstance(value, str) or (rule.choices and value not in rule.choices):
        raise ValueError(
            f"{name}={shown(value)} is not known; allowed values: {', '.join(map(str, rule.choices))}"
        )
    return value


def check_value(name: str, value: Any, rule: Rule) -> Any:
    """`value` converted to the rule's kind, or a ValueError naming `name`."""
    if value is None:
        if rule.optional:
            return None
        raise ValueError(f"{name}=None is not allowed; allowed: {rule.describe()}")
    if name == "tucker_rule" and not isinstance(value, str):  # an energy fraction, below 1
        fraction = _number(name, value, Rule("float", low=0, high=1, low_open=True))
        if fraction >= 1:
            raise ValueError(
                f"{name}={shown(value)} is out of range; allowed: 'vbmf' or an energy fraction in (0, 1)"
            )
        return fraction
    if rule.kind == "dict":
        if not isinstance(value, Mapping):
            raise ValueError(f"{name}={shown(value)} must be {rule.describe()}")
        return dict(value)
    if rule.kind == "str":
        return _string(name, value, rule)
    if rule.kind.startswith("list"):
        if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
            raise ValueError(f"{name}={shown(value)} must be {rule.describe()}")
        items = list(value)
        if len(items) < rule.min_items:
            raise ValueError(f"{name}={shown(value)} must hold at least {rule.min_items} item(s)")
        item = Rule(rule.kind[5:-1], rule.low, rule.high, rule.low_open, rule.choices)
        check = _string if item.kind == "str" else _number
        return [check(f"{name}[{i}]", v, item) for i, v in enumerate(items)]
    return _number(name, value, rule)


def _available_bytes() -> int | None:
    """Memory the machine has available now (Linux: MemAvailable), or None when unknown."""
    try:
        for line in open("/proc/meminfo"):  # noqa: SIM115 - a short read
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _dataset_of(name: str, values: Mapping[str, Any]) -> str:
    """The data set a size parameter splits (by the chapters' naming: `cifar_*`, `cnn_*`, bare
    `train_size` of the VGG chapter, MNIST otherwise)."""
    if name.startswith("cifar_") or (name in ("train_size", "test_size") and "width" in values):
        return "cifar10"
    if name.startswith("cnn_"):
        return str(values.get("cnn_dataset", "fashion-mnist"))
    return "mnist"


def _check_sizes(values: Mapping[str, Any]) -> None:
    """Every split size within its data set: `val_size` below the training images, a training
    size within what validation leaves, a test size within the test images. (Subsets of
    classes, as the input cases' digits, are smaller still: `data.load_dataset` checks those.)"""
    val = values.get("val_size")
    val = val if isinstance(val, int) and not isinstance(val, bool) else 0
    for name, value in values.items():
        if (
            not name.endswith(("train_size", "test_size"))
            or not isinstance(value, int)
            or isinstance(value, bool)
        ):
            continue
        dataset = _dataset_of(name, values)
        n_train, n_test = SPLIT_SIZES.get(dataset, (None, None))
        if n_train is None:
            continue
        if val >= n_train:
            raise ValueError(f"val_size={val:,} leaves no training images of {dataset} ({n_train:,}); "
                             f"allowed: 0..{n_train - 1:,}")  # fmt: skip
        upper = n_train - val if name.endswith("train_size") else n_test
        if value > upper:
            what = f"{n_train:,} training images, {val:,} of them for validation" if name.endswith(
                "train_size") else f"{n_test:,} test images"  # fmt: skip
            raise ValueError(
                f"{name}={value:,} is more than {dataset} has ({what}); allowed: 1..{upper:,} or None"
            )


def check_together(values: Mapping[str, Any]) -> None:
    """Checks of parameters against each other, before any work: a decomposition plan against
    the network it names (methods, layers, ranks), node counts against the layer they index,
    and the masks' memory against what the machine has."""
    plan = values.get("lenet_plan")
    if isinstance(plan, Mapping):  # decomposed as the chapter will, on an untrained network (fast)
        lenet = models.build_model("lenet")
        try:
            decompose.decompose_model(lenet, decompose.resolve_plan(lenet, plan))
        except (ValueError, TypeError) as err:
            raise ValueError(f"lenet_plan={shown(dict(plan))}: {shown(str(err), 400)[1:-1]}") from None
    _check_sizes(values)
    hidden = values.get("hidden")
    if isinstance(hidden, int):
        for name in ("n_values", "shrink_n_values"):
            too_many = [n for n in values.get(name) or [] if n > hidden]
            if too_many:
                raise ValueError(
                    f"{name}={shown(values[name])}: cannot remove {too_many[0]} of the {hidden} hidden "
                    f"nodes; allowed: integers 1..{hidden} (hidden={hidden})"
                )
        available = _available_bytes()
        for name in ("n_trials", "bench_masks"):
            n = values.get(name)
            need = n * hidden * 16 if isinstance(n, int) else 0  # a mask and its sort keys, per trial
            if available is not None and need > available // 2:
                raise ValueError(
                    f"{name}={n:,} needs about {need / 2**30:,.1f} GiB for its masks ({name} x hidden x 16 "
                    f"bytes); this machine has {available / 2**30:,.1f} GiB available: at most "
                    f"{available // 2 // (hidden * 16):,}"
                )


def check(notebook: str, params: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any]:
    """Check `params` (a chapter's parameter values) against `RULES`: every name must be one of
    `known` (the chapter's parameters), every value follow its rule (the book's chapters have a
    rule for each parameter; a test checks it). Returns the converted values."""
    unknown = sorted(set(params) - set(known))
    if unknown:
        hints = {n: difflib.get_close_matches(n, list(known), n=1) for n in unknown}
        said = ", ".join(
            f"{shown(n, 80)}" + (f" (did you mean {h[0]!r}?)" if h else "") for n, h in hints.items()
        )
        raise ValueError(f"{notebook} has no parameter {said}; its parameters: {', '.join(sorted(known))}")
    out = {}
    for name, value in params.items():
        if name not in RULES:  # a notebook of the user's own: its values go through unchecked
            out[name] = value
            continue
        try:
            out[name] = check_value(name, value, RULES[name])
        except ValueError as err:
            raise ValueError(f"{notebook}: {err}") from None
    try:
        check_together({**known, **out})
    except ValueError as err:
        raise ValueError(f"{notebook}: {err}") from None
    return out
