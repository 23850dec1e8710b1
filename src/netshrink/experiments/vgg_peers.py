"""The VGG-16 case study's peer (V-T3, V-F3): Torch-Pruning's filter pruning beside the book's
sensitivity-based rates, from the same trained network, at the same measured CPU speedup target
and with the same fine-tuning.

The book's row is the chapter's own pruned and fine-tuned network (`reduce_vgg`'s step before
Tucker-2, from the cache). Each Torch-Pruning configuration takes the smallest ratio on a grid
whose network runs the target speedup faster, timed as the chapter times its own candidates
(`vgg_rates.measured_speedups`), and is fine-tuned by the same call with the same arguments
(`Reduction.fine_tuning`); then every network is timed beside the original in one run.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from netshrink import data, measure, models
from netshrink.cache import TrainResult
from netshrink.compress import peer_importance
from netshrink.compress.fold import fold_batch_norm
from netshrink.compress.peer_pruning import Reach, ratio_for_speedup, torch_pruning_filters
from netshrink.experiments.tensor_decomposition import FineTune
from netshrink.experiments.vgg_case_study import Reduction
from netshrink.experiments.vgg_prose import fine_tuning_recipe, rates_text
from netshrink.experiments.vgg_rates import measured_speedups
from netshrink.findings import Findings, compression_rows
from netshrink.findings import peer_line as peer_line_of
from netshrink.progress import update as report_progress

__all__ = [
    "OURS", "PEERS", "PRUNED_STEP", "UNTUNED_STEP", "PeerChoice", "PeerConfig", "Peers", "budget_sentence",
    "choose_ratio", "peer_fine_tuning", "peer_line", "peer_recipe", "peers_findings", "vgg_peers",
]  # fmt: skip

OURS = "netshrink, sensitivity rates"
PRUNED_STEP = "filters pruned, fine-tuned"  # the chapter's step the peers stand beside
UNTUNED_STEP = "filters pruned"  # the same network before its fine-tuning


@dataclass(frozen=True)
class PeerConfig:
    """One Torch-Pruning configuration: its criterion, whether the ratio is global, and the
    name its glue values take."""

    criterion: str
    global_pruning: bool
    slug: str


PEERS = {
    f"{peer_importance.PEER}, L1, uniform": PeerConfig("l1", False, "tp_l1_uniform"),
    f"{peer_importance.PEER}, group norm, global": PeerConfig("group-norm", True, "tp_group_norm_global"),
}


def peer_line() -> str:
    """One line on where the peer's rows come from, or that they are left out."""
    return peer_line_of(
        peer_importance.PEER,
        "torch-pruning",
        peer_importance.version(),
        "pruned by torch-pruning {version}'s `MetaPruner`, in one step",
        "the book's pruning",
    )


@dataclass
class PeerChoice:
    """A configuration's search: the ratio chosen (`Reach`), its network pruned at that ratio
    (not fine-tuned) and what the row must say ('' when nothing)."""

    reach: Reach
    model: nn.Module
    note: str


def _whole_layers(base: nn.Module, pruned: nn.Module) -> list[str]:
    """The convs of `pruned` that kept all of `base`'s filters."""
    return [n for n in models.conv_layers(base)
            if pruned.get_submodule(n).out_channels == base.get_submodule(n).out_channels]  # fmt: skip


def choose_ratio(
    model: nn.Module,
    images: torch.Tensor,
    config: PeerConfig,
    *,
    ratios: Sequence[float],
    target: float,
    round_to: int,
    repeats: int,
) -> PeerChoice:
    """The smallest of `ratios` at which Torch-Pruning's `config` makes `model` run at least
    `target` times as fast on the batch `images` (N, 3, 32, 32), all ratios timed in one run
    with `model` (`measured_speedups`), or the fastest with a note saying the target is out of
    reach. Only convs lose filters (the classifier's Linear layers are kept, as in the book's
    pruning); with a uniform ratio, the note names the layers the library left whole."""
    ignored = models.layer_names(model, nn.Linear)
    kwargs = {"criterion": config.criterion, "global_pruning": config.global_pruning,
              "ignored_layers": ignored, "round_to": round_to}  # fmt: skip
    pruned = {r: torch_pruning_filters(model, images[:1], ratio=r, **kwargs) for r in ratios}
    _, speedups = measured_speedups(model, pruned, images, repeats=repeats)
    reach = ratio_for_speedup(speedups, target)
    notes = [reach.note()]
    whole = _whole_layers(model, pruned[reach.ratio])
    if not config.global_pruning and whole:
        notes.append(f"{', '.join(whole)} left whole (ratio {reach.ratio:g} with channels kept in multiples "
                     f"of {round_to} would remove all their filters)")  # fmt: skip
    return PeerChoice(reach, pruned[reach.ratio], "; ".join(n for n in notes if n))


def _origin(base: TrainResult, config: PeerConfig, ratio: float, round_to: int) -> str:
    return json.dumps({"model": base.key, "peer": f"{peer_importance.PEER} {peer_importance.version()}",
                       "criterion": config.criterion, "global_pruning": config.global_pruning,
                       "ratio": ratio, "round_to": round_to}, sort_keys=True)  # fmt: skip


def _kept(base: nn.Module, pruned: nn.Module) -> dict[str, float]:
    """The fraction of `base`'s filters each conv of `pruned` keeps, in layer order."""
    return {n: pruned.get_submodule(n).out_channels / base.get_submodule(n).out_channels
            for n in models.conv_layers(base)}  # fmt: skip


def peer_fine_tuning(reduction: Reduction, epochs: int | None) -> dict:
    """The fine-tuning every network of V-T3 gets: the chapter's (`reduction.fine_tuning`), for
    `epochs` when given (a whole number, 0 for none)."""
    if epochs is None or epochs == reduction.fine_tuning.get("epochs"):
        return reduction.fine_tuning
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(
            f"epochs={epochs!r}: the peers' fine-tuning takes a whole number of epochs, 0 or more"
        )
    return {**reduction.fine_tuning, "epochs": epochs}


def budget_sentence(reduction: Reduction, epochs: int | None) -> str:
    """How V-T3's networks are fine-tuned, for the page: the chapter's step itself, or one
    shorter, equal budget for all (`peer_fine_tuning`)."""
    chapter = reduction.fine_tuning.get("epochs")
    settings = peer_fine_tuning(reduction, epochs)
    if settings == reduction.fine_tuning:
        return (
            f"Each peer network is fine-tuned exactly as the book's pruned network was ({chapter} "
            f"epoch{'s' * (chapter != 1)}); the book's row is that network (V-T2's pruned step, before "
            "Tucker-2)."
        )
    return (f"Each peer network is fine-tuned for {settings['epochs']} epochs with the chapter's recipe, "
            "and so is the book's pruned network, again from its state before fine-tuning: one budget for "
            f"all. The book's row is therefore not V-T2's pruned step (fine-tuned {chapter} epochs) but the "
            f"same pruned network fine-tuned {settings['epochs']} epochs here, before Tucker-2.")  # fmt: skip


def peer_recipe(reduction: Reduction, epochs: int | None) -> str:
    """V-T3's fine-tuning in words (`fine_tuning_recipe` of `peer_fine_tuning`'s settings)."""
    settings = peer_fine_tuning(reduction, epochs)
    distill = settings.get("distill")
    teacher = (
        {"distill_weight": distill.weight, "distill_temperature": distill.temperature} if distill else {}
    )
    return fine_tuning_recipe(settings["optimizer"], settings["lr"], settings["epochs"],
                              settings.get("label_smoothing", 0.0), **teacher)  # fmt: skip


@dataclass
class Peers:
    """V-T3's networks, by name (`original`, `OURS`, then those of `PEERS` built): `table` in
    plain units (ratio, parameters, MFLOPs per image, seconds, speedup, `test accuracy` and
    `accuracy lost` as fractions, `target missed`: no ratio reached the target), `kept` (network
    -> conv -> fraction of its filters kept) and `notes` (network -> what its row must say, ''
    when nothing)."""

    table: pd.DataFrame
    kept: dict[str, dict[str, float]]
    notes: dict[str, str]
    data_set: str = ""  # the data's label, for the glance page's records; none recorded when ""

    def shown(self) -> pd.DataFrame:
        """V-T3 as the page shows it (and its CSV keeps): `table` with the filters kept per conv
        as text after the ratio ('50, 50, 75', % in layer order, made here for reading only) and
        the notes last."""
        table = self.table.copy()
        table.insert(1, "filters kept (%)", pd.Series({k: rates_text(v) for k, v in self.kept.items()}))
        table["note"] = pd.Series(self.notes)
        return table


def vgg_peers(
    base: TrainResult,
    reduction: Reduction,
    splits: data.DataSplits,
    fine_tune: FineTune,
    *,
    target: float,
    ratios: Sequence[float],
    round_to: int,
    images: torch.Tensor,
    batch_size: int,
    repeats: int,
    epochs: int | None = None,
) -> Peers:
    """V-T3: the original, the book's pruned and fine-tuned network (`reduction`'s PRUNED_STEP)
    and each of `PEERS` at the ratio `choose_ratio` finds for `target`, fine-tuned by
    `fine_tune` with `reduction.fine_tuning`; with `epochs` other than the chapter's, the book's
    pruned network (untuned) and the peers' are all fine-tuned alike for `epochs` instead (one
    shorter, equal budget); without Torch-Pruning, the first two only. One
    row per network: ratio, parameters, MFLOPs per image, median seconds to classify `images`
    in batches of `batch_size` (batch norm folded, all timed in turn in one run, `repeats`),
    speedup over the original, test accuracy and accuracy lost from the original's (fractions)
    and whether the target was missed; with the filters kept per conv and the notes (`Peers`)."""
    report_progress(stage=f"{peer_importance.PEER} beside the book's filter pruning")
    settings = peer_fine_tuning(reduction, epochs)
    if settings == reduction.fine_tuning:
        ours = reduction.models[PRUNED_STEP], reduction.accuracy[PRUNED_STEP], float("nan"), None
    else:
        untuned = copy.deepcopy(reduction.models[UNTUNED_STEP])
        tuned = fine_tune(untuned, reduction.origins[UNTUNED_STEP], splits, **settings)
        ours = tuned.model, tuned.test["acc"], float("nan"), None
    rows = {"original": (base.model, base.test["acc"], float("nan"), None), OURS: ours}
    if peer_importance.version() is not None:
        for name, config in PEERS.items():
            found = choose_ratio(base.model, images, config, ratios=ratios, target=target, round_to=round_to,
                                 repeats=repeats)  # fmt: skip
            origin = _origin(base, config, found.reach.ratio, round_to)
            tuned = fine_tune(copy.deepcopy(found.model), origin, splits, **settings)
            rows[name] = (tuned.model, tuned.test["acc"], found.reach.ratio, found)
    folded = {name: fold_batch_norm(model) for name, (model, *_) in rows.items()}
    seconds = measure.time_images(folded, images, batch_size=batch_size, repeats=repeats)
    table = pd.DataFrame(
        {
            "ratio": {k: r for k, (_, _, r, _) in rows.items()},
            "parameters": {k: models.count_parameters(m) for k, (m, *_) in rows.items()},
            "MFLOPs per image": {k: measure.flops(m, images[:1]) / 1e6 for k, m in folded.items()},
            "seconds": seconds,
            "speedup": seconds["original"] / seconds,
            "test accuracy": {k: a for k, (_, a, _, _) in rows.items()},
            "accuracy lost": {k: base.test["acc"] - a for k, (_, a, _, _) in rows.items()},
            "target missed": {k: c is not None and not c.reach.reached for k, (*_, c) in rows.items()},
        }
    ).rename_axis("model")
    kept = {k: _kept(base.model, m) for k, (m, *_) in rows.items()}
    notes = {k: c.note if c is not None else "" for k, (*_, c) in rows.items()}
    return Peers(table, kept, notes, splits.label)


def _slug(name: str) -> str:
    return "ours" if name == OURS else PEERS[name].slug


def _verdict(table: pd.DataFrame) -> str:
    """Which reached network is the most accurate, and by how much over the book's or the best peer."""
    reached = table.drop(index="original")
    reached = reached[~reached["target missed"].astype(bool)]
    order = reached.sort_values("test accuracy", ascending=False, kind="stable")
    speeds = ", ".join(f"{name} {row['speedup']:.2f}x" for name, row in reached.iterrows())
    if len(order) < 2:
        return f"Only {order.index[0]} reached the target ({speeds})."
    best, best_acc = order.index[0], order["test accuracy"].iloc[0]
    other = order.drop(index=OURS).index[0] if best == OURS else OURS
    diff = 100 * (best_acc - order.loc[other, "test accuracy"])
    who = "the book's sensitivity rates are" if best == OURS else f"{best} is"
    faster = order.loc[best, "speedup"] >= order.loc[other, "speedup"]
    pace = (
        f"and at least as fast as {other}"
        if faster
        else f"but slower than {other}: at unequal "
        "speedups accuracy alone does not rank the two (figure V-F3)"
    )
    return (f"At the measured speedups ({speeds}), {who} the most accurate after fine-tuning, {pace}: "
            f"{100 * best_acc:.2f} % against {100 * order.loc[other, 'test accuracy']:.2f} % for {other} "
            f"({diff:.2f} points, one seed each).")  # fmt: skip


def peers_findings(peers: Peers) -> Findings:
    """Per network, its speedup, accuracy (%) and points lost as glue, and `peers_sentence`: which
    network wins in accuracy at the measured speedups and by how much, and which configuration
    cannot reach the target (its note). Every network but the original is recorded for the glance
    page, a marker each, where `peers.data_set` names the data."""
    table = peers.table
    glue: dict[str, object] = {}
    for name, row in table.drop(index="original").iterrows():
        slug = _slug(str(name))
        glue |= {f"peers_{slug}_speedup": float(row["speedup"]),
                 f"peers_{slug}_acc": 100 * float(row["test accuracy"]),
                 f"peers_{slug}_lost": 100 * float(row["accuracy lost"])}  # fmt: skip
    if len(table) <= 2:
        glue["peers_sentence"] = f"No {peer_importance.PEER} configuration was built."
        return Findings(glue)
    missed = [f"{name}: {peers.notes[name]}." for name, out in table["target missed"].items() if out]
    glue["peers_sentence"] = " ".join([_verdict(table), *missed])
    if not peers.data_set:  # no data set named: nothing recorded for the glance page
        return Findings(glue)
    records = compression_rows("V-T3", table, data_set=peers.data_set, base="original", model="VGG-16, {row}",
                               how="filters removed ({row}), fine-tuned alike", method="{row}")  # fmt: skip
    return Findings(glue, compressions=records)
