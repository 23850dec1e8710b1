"""The Tensor decomposition chapter's peer: tensorly-torch's factorized convolutions beside the
book's decomposed layers, at the same ranks on the same trained CIFAR CNN, fine-tuned alike and
timed side by side with the original in one run.

The ranks are D-T7's (the largest within the same share of each layer's parameters), so the
book's fine-tuned models are D-T7's own, from the cache.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import torch

from netshrink import data
from netshrink.cache import TrainResult
from netshrink.compress import decompose, peer_layers
from netshrink.experiments.cifar_decomposition import budget_plan
from netshrink.experiments.tensor_decomposition import (
    FineTune,
    describe_plan,
    measure_models,
    model_table,
    origin,
)
from netshrink.findings import Findings, compression_rows
from netshrink.findings import peer_line as peer_line_of
from netshrink.progress import update as report_progress

__all__ = ["peer_decompositions", "peer_findings", "peer_line"]

OURS = "netshrink"


def peer_line() -> str:
    """One line on where the peer's rows come from, or that they are left out."""
    return peer_line_of(
        peer_layers.PEER,
        "tensorly-torch",
        peer_layers.version(),
        "`tltorch.FactorizedConv` layers of tensorly-torch {version}, convolving through their factors",
        "the book's layers",
    )


def _peer_origin(base: TrainResult, plan: dict) -> str:
    return json.dumps(
        {"model": base.key, "plan": plan, "layers": f"{peer_layers.PEER} factorized"}, sort_keys=True
    )


def peer_decompositions(
    cnn: TrainResult,
    splits: data.DataSplits,
    methods: Sequence[str],
    layers: Sequence[str],
    fraction: float,
    fine_tune: FineTune,
    *,
    n_blocks: int,
    epochs: int,
    images: torch.Tensor,
    batch_size: int,
    repeats: int,
    seed: int = 0,
) -> pd.DataFrame:
    """For each method of `methods` that tensorly-torch has (CP, Tucker-2, TT), the book's layers
    and tensorly-torch's at the same ranks on `layers`: one row per (method, library) after the
    original, with parameters, MFLOPs, `accuracy before fine-tuning` and `test accuracy`
    (fractions) after the same fine-tuning (`epochs` at lr 1e-4) and `seconds` to classify
    `images` (`attrs["images"]` of them), all timed side by side; `attrs["data set"]` names the
    data for the glance page's records (`peer_findings`)."""
    report_progress(stage=f"{peer_layers.PEER} beside the book's layers")
    shared = [m for m in methods if m in peer_layers.FACTORIZATION]
    peer = peer_layers.version() is not None
    named, tuned, ranks = {"original": cnn.model}, {}, {"original": "dense"}
    for m in shared:
        plan = decompose.resolve_plan(
            cnn.model, budget_plan(cnn.model, m, layers, fraction, n_blocks=n_blocks)
        )
        builds = {(m, OURS): (decompose.decompose_model(cnn.model, plan), origin(cnn, plan))}
        if peer:
            builds[(m, peer_layers.PEER)] = (
                peer_layers.tltorch_model(cnn.model, plan),
                _peer_origin(cnn, plan),
            )
        for key, (model, made_from) in builds.items():
            tuned[key] = fine_tune(model, made_from, splits, epochs=epochs, lr=1e-4, seed=seed)
            named[f"{key[0]}, {key[1]}"] = tuned[key].model
            ranks[f"{key[0]}, {key[1]}"] = describe_plan(plan)
    accuracy = {
        "original": cnn.test["acc"],
        **{f"{m}, {lib}": t.test["acc"] for (m, lib), t in tuned.items()},
    }
    table = model_table(measure_models(named, accuracy, images, batch_size=batch_size, repeats=repeats))
    table.insert(0, "library", ["PyTorch (dense)"] + [lib for _, lib in tuned])
    table.insert(1, "method", ["dense"] + [m for m, _ in tuned])
    before = [cnn.test["acc"]] + [t.before["acc"] for t in tuned.values()]
    table.insert(table.columns.get_loc("test accuracy"), "accuracy before fine-tuning", before)
    table["ranks"] = list(ranks.values())
    table.attrs["data set"] = splits.label
    return _with_paired_ratio(table)


def _with_paired_ratio(table: pd.DataFrame) -> pd.DataFrame:
    """The peer's seconds over ours, repeat by repeat in the same side-by-side pass that timed the
    table (`measure.side_by_side`'s runs): median and quartiles, on the peer's row (a ratio whose
    quartiles hold 1 is no difference)."""
    runs = pd.DataFrame(table.attrs["runs"])
    for column in ("peer / ours, seconds", "low", "high"):
        table[column] = float("nan")
    for m in dict.fromkeys(table["method"]):
        peer, ours = f"{m}, {peer_layers.PEER}", f"{m}, {OURS}"
        if peer in runs:
            ratio = runs[peer] / runs[ours]
            table.loc[peer, ["peer / ours, seconds", "low", "high"]] = [
                ratio.median(),
                ratio.quantile(0.25),
                ratio.quantile(0.75),
            ]
    return table


def peer_findings(table: pd.DataFrame) -> Findings:
    """Per method, the peer's speedup and accuracy (%) beside ours, and one sentence each that says
    which is faster and which more accurate after fine-tuning (or that they are equal); from
    `peer_decompositions` (`test accuracy` a fraction). The peer's models are recorded for the
    glance page beside the original (on `attrs["data set"]`), one marker for the library; the
    book's are D-T7's, recorded there."""
    glue, sentences = {}, []
    speed = "speedup"
    for m in dict.fromkeys(table["method"]):
        rows = table[table["method"] == m].set_index("library")
        if m == "dense" or peer_layers.PEER not in rows.index:
            continue
        ours, theirs = rows.loc[OURS], rows.loc[peer_layers.PEER]
        acc = "test accuracy"
        glue |= {f"peer_{m}_speedup": float(theirs[speed]), f"ours_{m}_speedup": float(ours[speed]),
                 f"peer_{m}_acc": 100 * float(theirs[acc]),
                 f"ours_{m}_acc": 100 * float(ours[acc])}  # fmt: skip
        if theirs["low"] == theirs["high"]:
            faster = "not judged for speed (one repeat: no spread to judge a difference by)"
        elif theirs["low"] <= 1 <= theirs["high"]:
            faster = "equally fast (the peer's time over ours has quartiles that hold 1)"
        else:
            faster = (
                "the book's layers are faster" if theirs["low"] > 1 else f"{peer_layers.PEER}'s are faster"
            )
        diff = 100 * float(ours[acc] - theirs[acc])
        sentences.append(
            f"{m}: {faster} (the book's {ours[speed]:.2f}x, {peer_layers.PEER}'s {theirs[speed]:.2f}x "
            f"over the original; the peer's time {theirs['peer / ours, seconds']:.2f} of ours); after "
            f"fine-tuning the book's reach {100 * ours[acc]:.2f} % and {peer_layers.PEER}'s "
            f"{100 * theirs[acc]:.2f} % ({diff:+.2f} points, one seed)."
        )
    glue["peer_layers_sentence"] = " ".join(sentences) if sentences else "No peer layer was built."
    peer_rows = [name for name, library in table["library"].items() if library == peer_layers.PEER]
    if not peer_rows:
        return Findings(glue)
    compressions = compression_rows(
        "D-T8", table, data_set=table.attrs["data set"], rows=peer_rows, base="original",
        model="CIFAR CNN, {row}", how="{row} layers at D-T7's ranks + fine-tuning",
        method=f"{peer_layers.PEER}'s factorized convolutions",
    )  # fmt: skip
    return Findings(glue, compressions=compressions)
