"""The Node importance chapter's peers: Torch-Pruning's importance criteria beside the book's
first-order Taylor estimate, each ranked against the exact oracle (the loss change when a node is
removed), and the nodes each removes within one loss budget.

Every criterion ranks the nodes of the hidden layer; removing them in that order, least
important first, one more node a mask (all prefixes in one batched `evaluate_masks` sweep), a
criterion keeps removing while the validation loss stays within `budget` of the intact network's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from netshrink import stats
from netshrink.cache import TrainResult
from netshrink.compress import peer_importance
from netshrink.compress.masking import evaluate_masks
from netshrink.experiments.random_pruning import glue_key
from netshrink.findings import Findings
from netshrink.findings import peer_line as peer_line_of
from netshrink.progress import update as report_progress

__all__ = ["ORACLE", "TAYLOR", "budget_removals", "criteria_table", "criteria_findings", "peer_line"]

ORACLE = "oracle (loss change)"
TAYLOR = "Taylor estimate (book)"
_OURS = {ORACLE: "loss_change", TAYLOR: "taylor"}  # criterion -> column of `importance_table`
COLUMNS = [
    "library", "Spearman (mean)", "Spearman low", "Spearman high",
    "nodes removed (mean)", "removed low", "removed high", "test acc (mean)", "networks", "note",
]  # fmt: skip


def prefix_masks(order: torch.Tensor) -> torch.Tensor:
    """Keep-masks removing the first 1, 2, ..., n - 1 nodes of `order` (n,): (n - 1, n) bool."""
    n = len(order)
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n)
    return rank.unsqueeze(0) >= torch.arange(1, n).unsqueeze(1)


def budget_removals(
    model: torch.nn.Module, layer: str, loader: Iterable, scores: dict[str, torch.Tensor], budget: float
) -> tuple[dict[str, int], pd.DataFrame]:
    """For each criterion's `scores` (n,): the nodes removed, least important first, before the
    validation loss first rises more than `budget` above the intact network's, and the loss change
    along the whole order (a frame: criterion, removed, loss change)."""
    removed, curves = {}, []
    for name, s in scores.items():
        result = evaluate_masks(model, layer, loader, keep=prefix_masks(peer_importance.ranking_order(s)))
        change = result.loss_change.numpy()
        over = np.flatnonzero(change > budget)
        removed[name] = int(over[0]) if len(over) else len(change)
        curves.append(
            pd.DataFrame({"criterion": name, "removed": np.arange(1, len(change) + 1), "loss change": change})
        )
    return removed, pd.concat(curves, ignore_index=True)


def _test_acc(model, layer: str, loader: Iterable, scores: dict[str, torch.Tensor], removed: dict[str, int]):
    """Test accuracy after each criterion's removal, all criteria in one batched pass."""
    n = len(next(iter(scores.values())))
    keeps = torch.stack(
        [torch.ones(n, dtype=torch.bool) if removed[c] == 0 else
         prefix_masks(peer_importance.ranking_order(s))[removed[c] - 1] for c, s in scores.items()]
    )  # fmt: skip
    acc = evaluate_masks(model, layer, loader, keep=keeps).acc.numpy()
    return dict(zip(scores, acc, strict=True))


def _network_rows(
    net: TrainResult, nodes: pd.DataFrame, layer: str, val, test, budget: float, peer: bool, seed: int
):
    scores = {c: torch.tensor(nodes[col].to_numpy(), dtype=torch.float64) for c, col in _OURS.items()}
    library = dict.fromkeys(scores, "netshrink")
    if peer:
        theirs = peer_importance.torch_pruning_scores(net.model, layer, val, seed=seed)
        scores |= theirs
        library |= dict.fromkeys(theirs, peer_importance.PEER)
    removed, curves = budget_removals(net.model, layer, val, scores, budget)
    acc = _test_acc(net.model, layer, test, scores, removed)
    oracle = scores[ORACLE]
    rows = [
        {"criterion": c, "library": library[c], "spearman": stats.spearman(s, oracle),
         "removed": removed[c], "test acc": acc[c], "nodes": len(s)}
        for c, s in scores.items()
    ]  # fmt: skip
    return pd.DataFrame(rows), curves


def _summary(per_network: pd.DataFrame, peer: bool) -> pd.DataFrame:
    rows = {}
    for c, g in per_network.groupby("criterion", sort=False):
        rho, rho_low, rho_high = stats.mean_ci(g["spearman"])
        rho_low, rho_high = max(rho_low, -1.0), min(rho_high, 1.0)  # a correlation's bounds
        k, k_low, k_high = stats.mean_ci(g["removed"])
        k_low, k_high = max(k_low, 0.0), min(k_high, float(g["nodes"].max() - 1))  # a count's bounds
        rows[c] = [g["library"].iloc[0], rho, rho_low, rho_high, k, k_low, k_high,
                   float(g["test acc"].mean()), len(g), ""]  # fmt: skip
    rows[ORACLE][-1] = "the reference: ranks itself perfectly"
    if peer:
        for c, why in peer_importance.NOT_APPLICABLE.items():
            rows[c] = [peer_importance.PEER, *[float("nan")] * 7, 0, f"does not apply: {why}"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS).rename_axis("criterion")


def criteria_table(
    nets: Sequence[TrainResult],
    importance: pd.DataFrame,
    val: Iterable,
    test: Iterable,
    budget: float,
    layer: str = "hidden.0",
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every criterion on every network: (summary, per_network, curves of network 0).

    `importance`: `node_importance.importance_table` of `nets` (the oracle and our Taylor
    estimate). The summary has one row per criterion: library, mean Spearman correlation with
    the oracle over the networks with its 95 % t interval, mean nodes removed within `budget`
    with its interval, mean test accuracy after that removal (a fraction), networks and a note.
    Torch-Pruning's rows are there when it is installed (`peer_importance.version`).
    """
    if budget < 0:
        raise ValueError(f"budget={budget} must be a non-negative loss rise (mean cross-entropy)")
    peer = peer_importance.version() is not None
    frames, first = [], None
    for i, net in enumerate(nets):
        report_progress(stage=f"importance criteria, network {i}")
        rows, curves = _network_rows(
            net, importance[importance["network"] == i], layer, val, test, budget, peer, seed + i
        )
        frames.append(rows.assign(network=i))
        first = curves if first is None else first
    per_network = pd.concat(frames, ignore_index=True)
    return _summary(per_network, peer), per_network, first


def peer_line() -> str:
    """One line on where the peers' rows come from, or that they are left out."""
    return peer_line_of(
        peer_importance.PEER,
        "torch-pruning",
        peer_importance.version(),
        "computed by Torch-Pruning {version}, with its criteria's defaults",
        "the book's criteria",
    )


def criteria_findings(summary: pd.DataFrame, per_network: pd.DataFrame, dataset: str) -> Findings:
    """The peer criterion closest to the oracle, our Taylor estimate beside it as a paired
    difference over the networks with its interval, and the sentence that says which ranks closer."""
    key = glue_key(dataset)
    glue = {f"taylor_rho_{key}": float(summary.loc[TAYLOR, "Spearman (mean)"])}
    peers = summary[(summary["library"] == peer_importance.PEER) & summary["Spearman (mean)"].notna()]
    if peers.empty:
        return Findings(glue | {f"peer_sentence_{key}": "No peer criterion was computed."})
    best = str(peers["Spearman (mean)"].idxmax())
    wide = per_network.pivot(index="network", columns="criterion", values="spearman")
    diff, low, high = stats.mean_ci(wide[TAYLOR] - wide[best])
    if np.isnan(low) or low <= 0 <= high:
        verdict = "no difference that the networks resolve"
    else:
        verdict = "the book's estimate ranks closer" if diff > 0 else f"{best} ranks closer"
    span = "" if np.isnan(low) else f" ({low:+.3f} to {high:+.3f})"
    sentence = (
        f"Of {peer_importance.PEER}'s criteria, {best} ranks closest to the oracle (mean Spearman "
        f"{peers.loc[best, 'Spearman (mean)']:.3f}); the book's first-order Taylor estimate reaches "
        f"{glue[f'taylor_rho_{key}']:.3f}, a paired difference of {diff:+.3f}{span} over "
        f"{len(wide)} networks: {verdict}."
    )
    removed = summary["nodes removed (mean)"]
    return Findings(
        glue
        | {f"peer_best_{key}": best, f"peer_diff_{key}": diff, f"peer_sentence_{key}": sentence}
        | {f"peer_verdict_{key}": verdict, f"peer_removed_best_{key}": float(removed[best])}
        | {
            f"peer_removed_{name}_{key}": float(removed[row])
            for name, row in (("oracle", ORACLE), ("taylor", TAYLOR))
        }
    )
