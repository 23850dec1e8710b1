"""Algorithm 2 of the Random node pruning chapter (draft 004, section 3.1): shrinking a network by
random removal, under two readings of its rule, over several trained networks; its tables beside
the draft's Tables 3.3 (MNIST) and 3.6 (Fashion-MNIST), and the numbers the prose quotes.

The draft's pseudo-code is cut off after its first lines, but its inputs and first lines are
there: it takes `x_train` and `y_train`, starts `best_loss` and `best_acc` at the original
model's loss and accuracy, and draws from `to_test`. The reading closest to it (`READINGS['draft']`)
decides on the training data and keeps a removal when the loss does not rise and the accuracy
does not fall; ours (`READINGS['validation loss']`) decides on the validation split by the loss
alone. Both draw from the candidates not yet tested (`prune.shrink_randomly`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from netshrink import published, stats
from netshrink.cache import TrainResult
from netshrink.compress import prune
from netshrink.compress.masking import evaluate_masks
from netshrink.findings import Findings
from netshrink.items import ACCEPTANCE_ITEM, DRAFT_ITEMS, MEANS_ITEM, READING_ITEM, reading_stem
from netshrink.progress import update as report_progress

__all__ = [
    "ACCEPTANCE_ITEM",
    "DRAFT_ITEMS",
    "MEANS_ITEM",
    "READINGS",
    "READING_ITEM",
    "acceptance",
    "acceptance_findings",
    "check_reading",
    "draft_positions",
    "over_networks",
    "reading_stem",
    "shrink_findings",
    "shrink_networks",
    "shrink_runs",
    "shrink_steps",
    "shrink_table",
]

READINGS = {"draft": ("loss and accuracy", "train"), "validation loss": ("loss", "val")}
"""Reading name -> (`prune.shrink_randomly`'s rule, the split whose loss and accuracy decide)."""
_EXTRA_ROWS = (
    "mean over networks",
    "ci95 low",
    "ci95 high",
    "one network range low",
    "one network range high",
)


def check_reading(reading: str) -> str:
    """One of `READINGS`, else a ValueError naming them."""
    if reading not in READINGS:
        raise ValueError(
            f"reading={reading!r} is not known; allowed values: {', '.join(map(repr, READINGS))}"
        )
    return reading


def shrink_steps(result: prune.ShrinkResult) -> pd.DataFrame:
    """Algorithm 2's record as a table: one row per (run, step) with the nodes removed, whether
    the step was kept, and the kept model's loss and accuracy on the data that decides."""
    steps, runs = result.removed.shape
    return pd.DataFrame(
        {
            "run": torch.arange(runs).repeat(steps).numpy(),
            "step": torch.arange(steps).repeat_interleave(runs).numpy(),
            "removed": result.removed.flatten().numpy(),
            "accepted": result.accepted.flatten().numpy(),
            "loss": result.loss.flatten().numpy(),
            "acc": result.acc.flatten().numpy(),
        }
    )


def shrink_runs(
    net: TrainResult,
    loader,
    test_loader,
    n_values: Sequence[int],
    n_runs: int,
    seed: int = 0,
    layer: str = "hidden.0",
    rule: str = "loss",
    network: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Algorithm 2 for each n, deciding on `loader` by `rule`: (steps, final). `final` has one
    row per (n, run): the nodes removed, the loss and accuracy on `loader` and on `test_loader`
    of the shrunk network. Runs of network k draw from seed `seed * 1000 + n + 10_000 * k`."""
    steps, finals = [], []
    for n in n_values:
        gen = torch.Generator().manual_seed(seed * 1000 + n + 10_000 * network)
        result = prune.shrink_randomly(net.model, layer, n, loader, n_runs=n_runs, generator=gen, rule=rule)
        test = evaluate_masks(net.model, layer, test_loader, keep=result.keep)
        table = shrink_steps(result)
        steps.append(table.assign(n=n))
        final = table[table["step"] == table["step"].max()].drop(columns=["step", "accepted"])
        finals.append(final.assign(n=n, test_loss=test.loss.numpy(), test_acc=test.acc.numpy()))
    return pd.concat(steps, ignore_index=True), pd.concat(finals, ignore_index=True)


def shrink_networks(
    nets: Sequence[TrainResult],
    loaders: Mapping[str, object],
    n_values: Sequence[int],
    n_runs: int,
    reading: str,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`shrink_runs` of every network under `reading`; `loaders` maps 'train', 'val' and 'test'
    to loaders. (steps, final), each with a `network` and a `reading` column."""
    rule, split = READINGS[check_reading(reading)]
    report_progress(stage=f"Algorithm 2, {reading} reading")
    steps, finals = [], []
    for k, net in enumerate(nets):
        s, f = shrink_runs(net, loaders[split], loaders["test"], n_values, n_runs, seed, rule=rule, network=k)
        steps.append(s.assign(network=k, reading=reading))
        finals.append(f.assign(network=k, reading=reading))
    return pd.concat(steps, ignore_index=True), pd.concat(finals, ignore_index=True)


def over_networks(final: pd.DataFrame, value: str = "removed") -> pd.DataFrame:
    """Per n: the mean of each network's mean `value`, its 95 % Student-t interval over the
    networks (the trained networks are the sampled units), and the 95 % range of one more
    network's mean (`stats.one_more_range`). `value` is a count: the lower bounds are clipped at 0
    (the t interval is symmetric; a count is not). Columns n; rows `_EXTRA_ROWS`."""
    rows = {}
    for n, group in final.groupby("n"):
        means = group.groupby("network")[value].mean()
        rows[n] = dict(zip(_EXTRA_ROWS, (*stats.mean_ci(means), *stats.one_more_range(means)), strict=True))
    table = pd.DataFrame(rows)
    for row in ("ci95 low", "one network range low"):
        table.loc[row] = np.maximum(table.loc[row].to_numpy(dtype=float), 0.0)
    return table


def shrink_table(final: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The draft's statistics of the nodes removed per n for network 0's runs (as the draft's
    table describes one network), the draft's rows below ours, then the mean over networks and
    its 95 % interval. Index (statistic, source), columns n."""
    ours = pd.concat([stats.describe(final[final["network"] == 0], "n", "removed"), over_networks(final)])
    return stats.beside_draft(ours, published.RANDOM_PRUNING_TABLES[DRAFT_ITEMS[dataset]], "draft 004")


def acceptance(steps: pd.DataFrame) -> pd.DataFrame:
    """Per n: the share of draws kept (every step after the intact model, all runs and networks),
    and the share that n independent draws of one node would keep, p1 ** n, where p1 is the
    share kept at n = 1 (NaN without an n = 1 run)."""
    drawn = steps[steps["step"] > 0]
    kept = drawn.groupby("n")["accepted"].mean()
    p1 = kept.get(1, float("nan"))
    return pd.DataFrame({"share kept": kept, "p1 ** n": [p1**n for n in kept.index]}).rename_axis("n")


_WITHIN = "within the range of one network's mean"


def draft_positions(table: pd.DataFrame, draft: pd.DataFrame) -> str:
    """Where the draft's one-network mean lies against the 95 % range of one network's mean at
    each n (`table`: `over_networks`), in words: 'within the range of one network's mean at n = 1
    and above it at n = 2, 4'."""
    groups: dict[str, list[str]] = {}
    for n in table.columns:
        if n in draft.columns:
            where = _range_words(
                draft.loc["mean", n],
                table.loc["one network range low", n],
                table.loc["one network range high", n],
            )
            groups.setdefault(where, []).append(str(n))
    return " and ".join(
        ("within the range of one network's mean" if where == "within" else f"{where} it")
        + " at n = "
        + ", ".join(ns)
        for where, ns in groups.items()
    )


def _range_words(value: float, low: float, high: float) -> str:
    if value < low:
        return "below"
    return "above" if value > high else "within"


def shrink_findings(finals: Mapping[str, pd.DataFrame], labels: Mapping[str, str]) -> Findings:
    """Per data set and reading, at the smallest n: our mean nodes removed over networks, its 95 %
    interval, the draft's mean, min and max, and whether our mean lies below, within or above
    the draft's range; and each reading's n that removes most on average. The means over
    networks at every n are set beside the draft's tables (R-T3, R-T6)."""
    glue: dict[str, object] = {}
    compare = []
    for ds, final in finals.items():
        item, key = DRAFT_ITEMS[ds], ds.replace("-", "_")
        draft = published.RANDOM_PRUNING_TABLES[item]
        first = int(final["n"].min())
        glue |= {
            "alg2_first_n": first,
            f"table_mean_{key}": draft.loc["mean", first],
            f"table_min_{key}": draft.loc["min", first],
            f"table_max_{key}": draft.loc["max", first],
            f"table_median_{key}": draft.loc["50%", first],
            "alg2_draft_runs": published.ALG2_RUNS,
        }
        for reading, part in final.groupby("reading"):
            name, nets = ("draft" if reading == "draft" else "val"), part["network"].nunique()
            table = over_networks(part)
            mean, low, high, range_low, range_high = (float(table.loc[row, first]) for row in _EXTRA_ROWS)
            removed = part.groupby("n")["removed"].mean()
            net0 = part[(part["network"] == 0) & (part["n"] == first)]["removed"]
            glue |= {
                f"alg2_{name}_net0_{key}": float(net0.mean()),
                f"alg2_{name}_net0_min_{key}": float(net0.min()),
                f"alg2_{name}_net0_median_{key}": float(net0.median()),
                f"alg2_{name}_net0_max_{key}": float(net0.max()),
                f"alg2_{name}_positions_{key}": draft_positions(table, draft),
                f"alg2_{name}_mean_{key}": mean,
                f"alg2_{name}_low_{key}": low,
                f"alg2_{name}_high_{key}": high,
                f"alg2_{name}_range_low_{key}": range_low,
                f"alg2_{name}_range_high_{key}": range_high,
                f"alg2_{name}_best_n_{key}": int(removed.idxmax()),
                f"alg2_{name}_best_removed_{key}": float(removed.max()),
            }
            compare += _comparisons(table, draft, item, f"{labels[ds]}", reading, nets)
    return Findings(glue, compare)


def _comparisons(
    table: pd.DataFrame, draft: pd.DataFrame, item: str, label: str, reading: str, nets: int
) -> list[dict]:
    """The means over networks at every n beside the draft's (`table`: `over_networks`), with the
    range of one network's mean as our spread and the draft's interval over its runs."""
    return [
        {
            "item": item,
            "quantity": f"{label}: mean nodes removed by Algorithm 2 ({reading} reading, "
            f"mean over networks), n = {n}",
            "ours": float(table.loc["mean over networks", n]),
            "draft": draft.loc["mean", n],
            "source": "draft 004",
            "spread": float(table.loc["one network range high", n] - table.loc["mean over networks", n]),
            "spread_what": f"95 % range of one network's mean about our mean over {nets} networks",
            "draft_spread": stats.mean_half_width(draft.loc["std", n], published.ALG2_RUNS),
            "draft_spread_what": f"95 % interval of its mean over {published.ALG2_RUNS} runs "
            "(the number of runs inferred)",
        }
        for n in table.columns
        if n in draft.columns
    ]


def acceptance_findings(steps: pd.DataFrame, dataset: str = "mnist") -> Findings:
    """The share of draws the draft's reading keeps at the smallest, second and largest n, and
    p1 ** n at the second (from `acceptance`), in percent, with whether groups pass more or less
    often than independent single draws would."""
    table = acceptance(steps[steps["reading"] == "draft"])
    key, ns = dataset.replace("-", "_"), list(table.index)
    second = ns[1] if len(ns) > 1 else ns[0]
    kept, independent = float(table.loc[second, "share kept"]), float(table.loc[second, "p1 ** n"])
    if independent != independent:  # NaN: no n = 1 run
        words = "(no n = 1 run to compare with)"
    else:
        words = (
            "more often than"
            if kept > independent
            else "less often than"
            if kept < independent
            else "as often as"
        )
    return Findings(
        {
            "alg2_last_n": int(ns[-1]),
            "alg2_second_n": int(second),
            f"alg2_kept_first_{key}": 100 * float(table.loc[ns[0], "share kept"]),
            f"alg2_kept_second_{key}": 100 * kept,
            f"alg2_kept_last_{key}": 100 * float(table.loc[ns[-1], "share kept"]),
            f"alg2_independent_second_{key}": 100 * independent,
            f"alg2_groups_vs_independent_{key}": words,
        }
    )
