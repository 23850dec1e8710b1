"""Predicates over the committed tables of Random node pruning and Node importance, for the
claims of their pages (`claims.CLAIMS`): each takes the chapter's `Numbers` and says whether a
sentence's comparison holds."""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from netshrink.book.numbers import Numbers

__all__ = [
    "DATA",
    "alg2_shapes",
    "batched_pass_a_few_singles",
    "column",
    "fashion_draft_below_from",
    "fashion_first_node",
    "glued",
    "it2",
    "no_faster_than_noise",
    "once_wrong_set",
    "one_network_range",
    "paired_init",
    "range_from_zero",
    "rows",
    "t6",
    "t6_obd_removes_more",
    "t6_taylor_fewest",
    "t6_taylor_ranks_closer_than_random",
    "t6_ties",
    "timing_noise",
    "width_rows",
    "within",
]

DATA = ("mnist", "fashion_mnist")


def glued(n: Numbers, name: str) -> float:
    return float(n.glue(name))


def column(n: Numbers, table: str, name: str) -> dict:
    return n.table(table)[name].to_dict()


def t6(n: Numbers, data: str) -> pd.DataFrame:
    """I-T6 of one data set ("mnist", "fashion_mnist"), its criteria as the index."""
    return n.table(f"I-T6-{data.replace('_', '-')}").dropna(subset=["nodes removed (mean)"])


def t6_taylor_fewest(n: Numbers) -> bool:
    """The book's estimate removes the fewest nodes of all the orders, fewer than random's."""
    for d in DATA:
        removed = t6(n, d)["nodes removed (mean)"]
        book = removed["Taylor estimate (book)"]
        if not (book < removed["random"] and book == removed.min()):
            return False
    return True


def t6_ties(n: Numbers) -> bool:
    """The criteria within a thousandth of the closest one's mean Spearman, as the prose names them."""
    named = {
        "mnist": {"magnitude L2 (group norm)", "LAMP", "Hessian (OBD)"},
        "fashion_mnist": {"magnitude L1", "Hessian (OBD)"},
    }
    for d in DATA:
        t = t6(n, d)
        peers = t[t["library"] == "Torch-Pruning"]["Spearman (mean)"]
        if peers.idxmax() != n.glue(f"peer_best_{d}"):
            return False
        if set(peers[peers > peers.max() - 1e-3].index) != named[d]:
            return False
    t = t6(n, "mnist")
    same = ["Spearman (mean)", "nodes removed (mean)", "test acc (mean)"]
    return bool((t.loc["LAMP", same] == t.loc["magnitude L2 (group norm)", same]).all())


def t6_obd_removes_more(n: Numbers) -> bool:
    return all(
        t6(n, d).loc["Hessian (OBD)", "nodes removed (mean)"] > glued(n, f"peer_removed_best_{d}")
        for d in DATA
    )


def t6_taylor_ranks_closer_than_random(n: Numbers) -> bool:
    return all((s := t6(n, d)["Spearman (mean)"])["Taylor estimate (book)"] > s["random"] + 0.3 for d in DATA)


def it2(n: Numbers, data: str, name: str) -> dict:
    """One column of I-T2 of one data set, by strategy."""
    return column(n, f"I-T2-{data.replace('_', '-')}", name)


def timing_noise(n: Numbers) -> float:
    """How far from 1 I-T5's speedup of the original CNN timed against itself lies (the layer's
    row that keeps every channel)."""
    t = n.table("I-T5").reset_index()
    same = t[(t["channels left"] == t["channels"]) & t["channels"].notna()]
    return float((same["speedup"] - 1).abs().max())


def no_faster_than_noise(n: Numbers) -> bool:
    flops = it2(n, "mnist", "MFLOPs")
    return (
        abs(glued(n, "exh_speedup_mnist") - 1) <= timing_noise(n) and flops["exhaustive"] < flops["original"]
    )


def width_rows(n: Numbers) -> bool:
    """The widths that are not multiples of 8 run slower than a multiple of 16 with as much or
    more work: MNIST once: worse + zero against the 16-multiple exhaustive; Fashion-MNIST once:
    worse against exhaustive."""
    m_flops, f_flops = it2(n, "mnist", "MFLOPs"), it2(n, "fashion_mnist", "MFLOPs")
    sixteen = "exhaustive, width a multiple of 16"
    return (
        glued(n, "once_zero_left_mnist") % 8 != 0
        and glued(n, "exh16_left_mnist") % 16 == 0
        and m_flops["once: worse + zero"] < m_flops[sixteen]
        and glued(n, "once_zero_speedup_mnist") < glued(n, "exh16_speedup_mnist")
        and glued(n, "once_left_fashion_mnist") % 8 != 0
        and glued(n, "exh_left_fashion_mnist") % 16 == 0
        and f_flops["once: worse"] < 1.02 * f_flops["exhaustive"]
        and glued(n, "once_speedup_fashion_mnist") < glued(n, "exh_speedup_fashion_mnist")
    )


def once_wrong_set(n: Numbers) -> bool:
    return (
        glued(n, "once_acc_mnist") < glued(n, "orig_acc_mnist") - 1
        and glued(n, "once_left_fashion_mnist") > glued(n, "exh_left_fashion_mnist")
        and glued(n, "once_acc_fashion_mnist") < glued(n, "exh_acc_fashion_mnist") - 1
    )


def batched_pass_a_few_singles(n: Numbers) -> bool:
    """One batched evaluation of all nodes costs between one and four single-node evaluations:
    in I-B1 (nodes / speedup) and in I-T3 (the exhaustive search's seconds per batched pass, one
    pass per node removed plus the last, against the greedy search's per evaluation)."""
    b1 = n.table("I-B1")
    ratios = [float(b1["nodes"].iloc[0]) / glued(n, "bench_speedup")]
    for d in DATA:
        passes = glued(n, f"orig_left_{d}") - glued(n, f"exh_left_{d}") + 1
        per_pass = glued(n, f"exh_seconds_{d}") / passes
        ratios.append(per_pass / (glued(n, f"greedy_seconds_{d}") / glued(n, f"greedy_evals_{d}")))
    return all(1 < r < 4 for r in ratios)


def rows(n: Numbers, table: str, statistic: str, source: str = "ours") -> pd.Series:
    """One row of a random-pruning table (R-T3, R-T4, R-S3-...): its values by n (as ints)."""
    t = n.table(table)
    row = t[t["source"] == source].loc[statistic].drop("source").astype(float)
    return row.set_axis([int(c) for c in row.index])


def one_network_range(n: Numbers, data: str) -> pd.DataFrame:
    """R-S1's range of one network's mean accuracy about the mean over networks, by n (fractions)."""
    s1 = n.table(f"R-S1-{data}")
    half = [
        float(stats.t.ppf(0.975, k - 1)) * sd * math.sqrt(1 + 1 / k)
        for k, sd in zip(s1["networks"].astype(int), s1["sd between networks"], strict=True)
    ]
    return pd.DataFrame({"low": s1["mean"] - half, "high": s1["mean"] + half}, index=s1.index)


def fashion_draft_below_from(n: Numbers, first: int) -> bool:
    """The draft's R-T4 means lie below the range of one network's mean exactly from n = `first` on."""
    draft, rng = rows(n, "R-T4", "mean", "draft 004"), one_network_range(n, "fashion-mnist")
    below = {k for k in rng.index if draft[k] < rng.loc[k, "low"]}
    inside = {k for k in rng.index if rng.loc[k, "low"] <= draft[k] <= rng.loc[k, "high"]}
    return below == {k for k in rng.index if k >= first} and inside == {k for k in rng.index if k < first}


def fashion_first_node(n: Numbers) -> bool:
    """Table 3.4's 0.8677 at n = 1 lies below our mean over networks but within one network's
    range, and removing one node costs our networks little (under a fifth of a point)."""
    draft, rng = rows(n, "R-T4", "mean", "draft 004")[1], one_network_range(n, "fashion-mnist").loc[1]
    ours = glued(n, "mean_acc_first_n_fashion_mnist")
    return (
        draft == 0.8677
        and 100 * draft < ours
        and rng["low"] <= draft <= rng["high"]
        and glued(n, "base_mean_fashion_mnist") - ours < 0.2
    )


def within(n: Numbers, table: str) -> set[int]:
    """The n at which the draft's mean lies within the range of one network's mean of `table`."""
    draft = rows(n, table, "mean", "draft 004")
    low, high = rows(n, table, "one network range low"), rows(n, table, "one network range high")
    return {k for k in draft.index if low[k] <= draft[k] <= high[k]}


def range_from_zero(n: Numbers, table: str) -> set[int]:
    low = rows(n, table, "one network range low")
    return {k for k in low.index if low[k] == 0}


def alg2_shapes(n: Numbers) -> bool:
    """The draft's means peak at n = 2 (MNIST) and n = 3 (Fashion-MNIST); ours fall from n = 1 on."""
    peaks = (
        rows(n, "R-T3", "mean", "draft 004").idxmax() == 2
        and rows(n, "R-T6", "mean", "draft 004").idxmax() == 3
    )
    ours = [rows(n, t, "mean over networks") for t in ("R-T3", "R-T6", "R-S3-mnist", "R-S3-fashion-mnist")]
    return peaks and all(bool((r.diff().dropna() < 0).all()) for r in ours)


def paired_init(n: Numbers) -> bool:
    """Keras's initialisation lowers the mean towards the draft's; the paired interval's upper end
    lies below 0 by less than a fifth of a point."""
    paired = n.table("R-S2").loc["paired difference"]
    draft = glued(n, "draft_mean_acc_max_n_fashion_mnist")
    return (
        paired["mean"] < 0
        and -0.002 < paired["ci95 high"] < 0
        and draft < glued(n, "init_mean_fashion_mnist") < glued(n, "init_ours_mean_fashion_mnist")
    )
