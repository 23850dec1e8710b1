"""The Tensor decomposition chapter (drafts 000 to 003): decomposed input images as features,
the week-6 network decomposed and fine-tuned, the course report's CIFAR-10 experiments, and
five decompositions compared at matched parameter budgets.

Chapter glue between `decompose` / `input_features` (pure algorithms) and the notebook:
configurations of the networks to train, experiments returning DataFrames.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, models, published, train
from netshrink.book.report import Findings, compression_rows
from netshrink.cache import FineTuned, TrainResult
from netshrink.compress import decompose, input_features
from netshrink.devices import mode
from netshrink.train import TrainConfig

# ------------------------------------------------------------------ input decomposition


@dataclass
class Classifier:
    """An MLP trained on some representation of the images, with its test predictions."""

    label: str
    inputs: int
    hidden: int
    parameters: int
    test_acc: float
    predictions: torch.Tensor
    history: pd.DataFrame


def train_classifier(
    label: str,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    test_xy: tuple[torch.Tensor, torch.Tensor],
    hidden: int,
    n_classes: int,
    *,
    epochs: int,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
) -> Classifier:
    """An MLP with one hidden layer of `hidden` ReLU nodes, trained with Adam on (x, y) on
    `device` (initialised on the CPU, so alike on every device); predictions come back on the CPU."""
    (x, y), (x_test, y_test) = train_xy, test_xy
    torch.manual_seed(seed)
    model = models.MLP(in_features=x[0].numel(), hidden=(hidden,), n_classes=n_classes).to(device)
    train_loader = data.make_loader(
        data.ImageDataset(x, y), batch_size, shuffle=True, seed=seed, device=device
    )
    test_loader = data.make_loader(data.ImageDataset(x_test, y_test), 10_000, device=device)
    history = train.fit(
        model, torch.optim.Adam(model.parameters(), lr=lr), train_loader, epochs,
        test_loader=test_loader, seed=seed, progress=False,
    )  # fmt: skip
    with torch.no_grad(), mode(model, training=False):
        predictions = torch.cat([model(xb).argmax(1).cpu() for xb, _ in test_loader])
    acc = float((predictions == y_test.cpu()).float().mean())
    return Classifier(
        label, x[0].numel(), hidden, models.count_parameters(model), acc, predictions, pd.DataFrame(history)
    )


@dataclass
class InputExperiment:
    """Full images against decomposed images for one digit set: classifiers and loadings."""

    classifiers: list[Classifier]
    bases: dict[str, input_features.ImageBasis]
    train_labels: torch.Tensor


def input_experiment(
    splits: data.DataSplits,
    method: str,
    ranks: Sequence[int],
    *,
    hidden_full: int,
    hidden_decomposed: int,
    epochs: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> InputExperiment:
    """Train an MLP on the full images and one on the loadings of each rank in `ranks` (the
    training images decomposed by `method`, the test images projected on their factors); the
    classifiers train on `device`, the decompositions run on the CPU."""
    train_xy = (splits.train.images.flatten(1), splits.train.labels)
    test_xy = (splits.test.images.flatten(1), splits.test.labels)
    n_classes = splits.n_classes
    classifiers = [
        train_classifier(
            "full data", train_xy, test_xy, hidden_full, n_classes, epochs=epochs, seed=seed, device=device
        )
    ]
    bases = {}
    for rank in ranks:
        basis = input_features.decompose_images(splits.train.images, method, rank, seed=seed)
        tr, te = input_features.standardise(basis.loadings, input_features.project(splits.test.images, basis))
        label = f"{method.upper() if method == 'cp' else method.title()} rank {rank}"
        bases[label] = basis
        classifiers.append(
            train_classifier(
                label,
                (tr, splits.train.labels),
                (te, splits.test.labels),
                hidden_decomposed,
                n_classes,
                epochs=epochs,
                seed=seed,
                device=device,
            )  # fmt: skip
        )
    return InputExperiment(classifiers, bases, splits.train.labels)


def input_table(
    experiment: InputExperiment, draft_columns: Mapping[str, tuple] | None = None
) -> pd.DataFrame:
    """D-T1..D-T4: inputs, hidden nodes, parameters and test accuracy per classifier, with the
    draft's values (inputs, hidden, parameters, accuracy) as extra columns."""
    rows = {
        c.label: {
            "inputs": c.inputs,
            "hidden nodes": c.hidden,
            "parameters": c.parameters,
            "test accuracy (%)": 100 * c.test_acc,
            "fit error of the images": next(
                (b.relative_error for name, b in experiment.bases.items() if name == c.label), float("nan")
            ),
        }
        for c in experiment.classifiers
    }
    for label, (inputs, hidden, params, acc) in (draft_columns or {}).items():
        rows[f"{label} (draft)"] = {
            "inputs": inputs,
            "hidden nodes": hidden,
            "parameters": params,
            "test accuracy (%)": 100 * acc,
            "fit error of the images": float("nan"),
        }
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ the week-6 network


def lenet_config(*, epochs: int, seed: int = 0, data_kwargs: dict | None = None) -> TrainConfig:
    """Draft 002's `Net` on MNIST with Adam 1e-3, batch 64."""
    return TrainConfig("lenet", "mnist", {}, dict(data_kwargs or {}), optimizer="adam", lr=1e-3,
                       epochs=epochs, batch_size=64, seed=seed)  # fmt: skip


def origin(base: TrainResult, plan: Mapping[str, Any]) -> str:
    """What made a decomposed model: the trained model's cache key and the plan."""
    return json.dumps({"model": base.key, "plan": plan}, sort_keys=True)


def compare_models(
    named: Mapping[str, nn.Module],
    accuracy: Mapping[str, float],
    images: torch.Tensor,
    *,
    batch_size: int,
    repeats: int,
) -> pd.DataFrame:
    """`measure.side_by_side` with the test accuracy (%) of each model: parameters, MFLOPs per
    image, and the median seconds to classify all of `images` in batches, in the default and the
    channels-last layout; `speedup` is over the first model."""
    table = measure.side_by_side(named, images, batch_size, repeats)
    table.insert(2, "test accuracy (%)", [100 * accuracy[k] for k in named])
    return table.rename(
        columns={"seconds": f"s for {len(images):,} images", "seconds, channels last": "s, channels last"}
    )


def describe_plan(plan: Mapping[str, Any]) -> str:
    """'conv2: tucker2 [8, 8]; l1: ...' for tables."""
    parts = []
    for name, spec in decompose.normalise_plan(plan).items():
        extra = f" x{spec['n_blocks']} blocks" if "n_blocks" in spec else ""
        parts.append(f"{name}: {spec['method']} {spec['rank']}{extra}")
    return "; ".join(parts)


# ------------------------------------------------------------------ the chapter's experiments

INPUT_CASES = {"D-T1": ("D-F1", "D-F2"), "D-T2": ("D-F3", "D-F4"), "D-T3": ("D-F5", "D-F6")}
"""Item of each input-decomposition case -> its digit-grid and loading-histogram figures."""


@dataclass
class InputCase:
    """One of draft 001's cases (D-T1..D-T3): a digit set, CP rank, experiment and its table."""

    item: str
    name: str
    rank: int
    splits: data.DataSplits
    experiment: InputExperiment
    table: pd.DataFrame
    findings: Findings


def input_case(
    item: str,
    *,
    val_size: int,
    train_size: int | None,
    epochs: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> InputCase:
    """Draft 001's case `item`: its digits (all for D-T3), an MLP on the full images against one on
    the loadings of a CP decomposition of the training images (rank 3, or 15 for all digits)."""
    if item not in published.INPUT_CP:
        raise ValueError(f"item={item!r} is not an input case; allowed: {', '.join(published.INPUT_CP)}")
    draft = published.INPUT_CP[item]
    digits = draft["digits"]
    splits = data.load_dataset("mnist", val_size=val_size, train_size=train_size, classes=digits, seed=seed)
    rank = 3 if digits else 15
    experiment = input_experiment(
        splits,
        "cp",
        [rank],
        hidden_full=draft["full"][1],
        hidden_decomposed=draft["decomposed"][1],
        epochs=epochs,
        seed=seed,
        device=device,
    )
    full, dec = experiment.classifiers
    name = "digits " + ", ".join(map(str, digits)) if digits else "all digits"
    key = item.replace("-", "").lower()
    glue = {
        f"{key}_full": 100 * full.test_acc,
        f"{key}_dec": 100 * dec.test_acc,
        f"{key}_full_params": f"{full.parameters:,}",
        f"{key}_dec_params": f"{dec.parameters:,}",
        f"{key}_error": experiment.bases[dec.label].relative_error,
    }
    compare = [
        {
            "item": item,
            "quantity": f"{name}: test accuracy, full images",
            "ours": full.test_acc,
            "draft": draft["full"][3],
            "source": "001 (week 5)",
        },
        {
            "item": item,
            "quantity": f"{name}: test accuracy, CP rank {rank}",
            "ours": dec.test_acc,
            "draft": draft["decomposed"][3],
            "source": "001 (week 5)",
        },
    ]
    table = input_table(experiment, {"full data": draft["full"], dec.label: draft["decomposed"]})
    return InputCase(item, name, rank, splits, experiment, table, Findings(glue, compare))


def tucker_input(
    splits: data.DataSplits,
    ranks: Sequence[int],
    *,
    epochs: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[pd.DataFrame, Findings]:
    """D-T4: 20-node MLPs on the full images and on Tucker loadings of each rank in `ranks`
    (full rank in the two spatial modes), beside draft 002's values where it gives them."""
    experiment = input_experiment(
        splits, "tucker", ranks, hidden_full=20, hidden_decomposed=20, epochs=epochs, seed=seed, device=device
    )
    draft = published.INPUT_TUCKER
    columns = {"full data": (784, 20, *draft["full"][1:])}
    columns.update({f"Tucker rank {r}": (r, 20, *draft[r][1:]) for r in ranks if r in draft})
    full, *decomposed = experiment.classifiers
    glue = {
        "dt4_full": 100 * full.test_acc,
        "dt4_best": 100 * decomposed[-1].test_acc,
        "dt4_best_rank": ranks[-1],
        "dt4_first": 100 * decomposed[0].test_acc,
        "dt4_first_rank": ranks[0],
    }
    compare = [
        {
            "item": "D-T4",
            "quantity": f"all digits: test accuracy, Tucker rank {r}",
            "ours": c.test_acc,
            "draft": draft[r][2],
            "source": "002 (week 6)",
        }
        for c, r in zip(decomposed, ranks, strict=True)
        if r in draft
    ]
    compare.append(
        {
            "item": "D-T4",
            "quantity": "all digits: test accuracy, full images, 20 hidden",
            "ours": full.test_acc,
            "draft": draft["full"][2],
            "source": "002 (week 6)",
        }
    )
    return input_table(experiment, columns), Findings(glue, compare)


FineTune = Callable[..., FineTuned]  # (model, origin, splits, *, epochs, lr, seed) -> FineTuned


@dataclass
class Decomposed:
    """Models decomposed by plans and fine-tuned: by name, the resolved plan and the result."""

    plans: dict[str, dict[str, Any]]
    tuned: dict[str, FineTuned]


def decompose_and_fine_tune(
    base: TrainResult,
    splits: data.DataSplits,
    plans: Mapping[str, Mapping[str, Any]],
    fine_tune: FineTune,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
) -> Decomposed:
    """Each plan (rank rules resolved on `base.model`) applied to a copy of `base.model` and
    fine-tuned by `fine_tune` (e.g. `cache.fine_tune_cached`)."""
    resolved = {name: decompose.resolve_plan(base.model, plan) for name, plan in plans.items()}
    tuned = {
        name: fine_tune(
            decompose.decompose_model(base.model, plan),
            origin(base, plan),
            splits,
            epochs=epochs,
            lr=lr,
            seed=seed,
        )
        for name, plan in resolved.items()
    }
    return Decomposed(resolved, tuned)


def fine_tuned_table(
    base: TrainResult, decomposed: Decomposed, images: torch.Tensor, *, batch_size: int, repeats: int
) -> pd.DataFrame:
    """`compare_models` of the original and every fine-tuned model, with the accuracy before
    fine-tuning beside the accuracy after (rows: 'original', '<plan>, fine-tuned')."""
    named = {"original": base.model, **{f"{k}, fine-tuned": v.model for k, v in decomposed.tuned.items()}}
    accuracy = {
        "original": base.test["acc"],
        **{f"{k}, fine-tuned": v.test["acc"] for k, v in decomposed.tuned.items()},
    }
    table = compare_models(named, accuracy, images, batch_size=batch_size, repeats=repeats)
    before = [base.test["acc"]] + [v.before["acc"] for v in decomposed.tuned.values()]
    table.insert(3, "accuracy before fine-tuning (%)", [100 * a for a in before])
    return table


def lenet_findings(table: pd.DataFrame, decomposed: Decomposed, data_set: str) -> Findings:
    """D-T5's numbers for the prose, the draft's three numbers set beside the row of the draft's
    own plan (like for like), and a compression record per plan."""
    seconds = next(c for c in table.columns if c.startswith("s for "))
    orig, ours, theirs = (
        table.loc[r] for r in ("original", "our plan, fine-tuned", "draft's plan, fine-tuned")
    )
    glue = {
        "lenet_acc": orig["test accuracy (%)"],
        "lenet_ours_acc": ours["test accuracy (%)"],
        "lenet_ours_before": ours["accuracy before fine-tuning (%)"],
        "lenet_ours_params": f"{int(ours['parameters']):,}",
        "lenet_ratio": orig["parameters"] / ours["parameters"],
        "lenet_flops_ratio": orig["MFLOPs per image"] / ours["MFLOPs per image"],
        "lenet_speedup": ours["speedup"],
        "lenet_speedup_cl": ours["speedup, channels last"],
        "lenet_orig_s": orig[seconds],
        "lenet_ours_s": ours[seconds],
        "lenet_draft_acc": theirs["test accuracy (%)"],
        "lenet_draft_params": f"{int(theirs['parameters']):,}",
        "lenet_draft_speedup": theirs["speedup"],
        "lenet_draft_speedup_cl": theirs["speedup, channels last"],
        "vbmf_ranks": str(decomposed.plans["our plan"]["conv2"]["rank"]),
    }
    draft, source = published.LENET, "002 (week 6)"
    compare = [
        {
            "item": "D-T5",
            "quantity": "week-6 network, the draft's plan: parameters",
            "ours": theirs["parameters"],
            "draft": draft["parameters"][1],
            "source": source,
        },
        {
            "item": "D-T5",
            "quantity": "week-6 network, the draft's plan: test accuracy after fine-tuning",
            "ours": theirs["test accuracy (%)"] / 100,
            "draft": draft["acc"][1],
            "source": source,
        },
        {
            "item": "D-T5",
            "quantity": "week-6 network, the draft's plan: time decomposed / original",
            "ours": theirs[seconds] / orig[seconds],
            "draft": draft["seconds"][1] / draft["seconds"][0],
            "source": source,
        },
    ]
    how = {f"{k}, fine-tuned": describe_plan(p) for k, p in decomposed.plans.items()}
    compressions = [
        {**row, "how": f"Tucker decomposition + fine-tuning: {how[row['how']]}"}
        for row in compression_rows("D-T5", table, data_set=data_set, model="week-6 Net, {row}", how="{row}")
    ]
    return Findings(glue, compare, compressions)
