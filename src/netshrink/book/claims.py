"""The claims the chapter pages make about their numbers, held against the committed results.

Each `Claim` names a chapter, the item it speaks of, a fragment of a sentence as the committed
notebook's markdown has it (whitespace collapsed), and a predicate over that chapter's numbers
(`Numbers` of `results/<profile>/<chapter>`). `failures` lists every claim whose sentence is gone
or whose numbers no longer support it, so that a rerun that reverses a finding cannot leave the
old sentence standing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from netshrink.book import table_checks as tc
from netshrink.book.chapters import CHAPTERS
from netshrink.book.numbers import Numbers
from netshrink.book.reasons import DRAFT_003_K, dt6_drops

__all__ = ["CLAIMS", "Claim", "failures", "prose"]


@dataclass(frozen=True)
class Claim:
    chapter: str
    item: str
    fragment: str
    holds: Callable[[Numbers], bool]


def _g(n: Numbers, name: str) -> float:
    return float(n.glue(name))


def _col(n: Numbers, table: str, column: str) -> dict:
    return n.table(table)[column].to_dict()


def _counts_worse_over_zero(n: Numbers) -> bool:
    for table in ("I-F3-counts", "I-F4-counts"):
        sums = n.table(table).groupby(level=0)[["zero", "worse"]].sum()
        if not (sums["worse"] > sums["zero"]).all():
            return False
    return True


def _d_t4(n: Numbers) -> dict:
    """D-T4's test accuracy per column, in percent (the table keeps fractions)."""
    return (100 * n.table("D-T4").loc["test accuracy"]).to_dict()


def _d_f9(n: Numbers, low: int, high: int, r2_above: bool) -> bool:
    t = n.table("D-F9")
    part = t[(t.index >= low) & (t.index <= high)]
    r1, r2 = part["R1 varied, R2 = 64"], part["R2 varied, R1 = 64"]
    return bool(((r2 > r1) if r2_above else (r2 < r1)).all())


def _d_t6_drops(n: Numbers) -> bool:
    d = dt6_drops(n)
    same = all(abs(d.loc[k, "our drop"] - d.loc[k, "report's drop"]) < 0.5 for k in (5, 6, 7))
    return d.loc[4, "our drop"] > d.loc[4, "report's drop"] + 1 and same


def _d_t7_spread(n: Numbers) -> bool:
    t = n.table("D-T7").drop(index="original")
    ratio = {
        c: t[c].max() / t[c].min() for c in ("decomposed layers' parameters", "MFLOPs per image", "speedup")
    }
    return (
        ratio["decomposed layers' parameters"] < 1.1
        and ratio["MFLOPs per image"] < 1.1
        and ratio["speedup"] > 1.2
    )


def _v_t2_time(n: Numbers) -> bool:
    t = n.table("V-T2")
    return t["MFLOPs per image"].iloc[0] / t["MFLOPs per image"].iloc[-1] > t["speedup"].iloc[-1]


_DATA, _METHODS = ("mnist", "fashion_mnist"), ("cp", "tucker2", "tt", "jaderberg", "btd")
_B, _I, _D, _V = "baselines", "node_importance", "tensor_decomposition", "vgg_case_study"
_R = "random_pruning"
CLAIMS: list[Claim] = [
    Claim(_B, "B-F3", "decoupled decay comes within a point of the two-convolution network's 97.1 %",
          lambda n: abs(_g(n, "acc_two_conv") - 97.1) < 1),
    Claim(_B, "B-F2", "lies far above the one-convolution network's 80.1 %",
          lambda n: _g(n, "acc_one_conv") - 80.1 > 10),
    Claim(_B, "B-T1", "the L2 penalty falls short of the first and lies above the second by less",
          lambda n: _g(n, "acc_two_conv_l2") < 97.1 - 0.5
          and 80.1 < _g(n, "acc_one_conv_l2") < _g(n, "acc_one_conv")),
    Claim(_B, "B-F5", "as the report found, these rates do not train",
          lambda n: max(_g(n, "acc_cnn_lr01"), _g(n, "acc_cnn_lr1")) <= 11),
    Claim(_B, "B-F6", "(B-F6; the report: a gain)", lambda n: _g(n, "pool_gain") > 0),
    Claim(_B, "B-T1", "comes close to their two-convolution number and lies far above their "
          "one-convolution number",
          lambda n: abs(_g(n, "acc_two_conv") - 97.1) < 1 and _g(n, "acc_one_conv") - 80.1 > 10),
    Claim(_B, "B-T1", "read as Adam's L2 penalty it misses both",
          lambda n: abs(_g(n, "acc_two_conv_l2") - 97.1) > 1 and abs(_g(n, "acc_one_conv_l2") - 80.1) > 1),
    Claim(_B, "B-F7", "The augmented run also trains longest",
          lambda n: n.params["cifar_aug_epochs"] > n.params["cifar_epochs"]),
    Claim(_I, "I-T2", "Removing all worse nodes at once removes the wrong set of nodes", tc.once_wrong_set),
    Claim(_I, "I-T2", "more than the exhaustive search keeps there, yet at", tc.once_wrong_set),
    Claim(_I, "I-T3", "one evaluation of all nodes costs a few single-node evaluations, not one per node",
          tc.batched_pass_a_few_singles),
    Claim(_I, "I-T3", "although it makes more loss evaluations",
          lambda n: all(_g(n, f"exh_evals_{d}") > _g(n, f"greedy_evals_{d}")
                        and _g(n, f"exh_seconds_{d}") < _g(n, f"greedy_seconds_{d}") for d in _DATA)),
    Claim(_I, "I-T2", "no faster than the timing noise allows although it does fewer multiply-adds",
          tc.no_faster_than_noise),
    Claim(_I, "I-T2", "that network also does fewer multiply-adds still, so it cannot tell width from work",
          lambda n: (f := tc.it2(n, "mnist", "MFLOPs"))["exhaustive, width a multiple of 16"]
          < f["exhaustive"]),
    Claim(_I, "I-T2", "multiples of 8 or 16, which the slower widths are not", tc.width_rows),
    Claim(_I, "I-T2", "a multiple of 16 with more multiply-adds", tc.width_rows),
    Claim(_I, "I-F3", "at every batch size and dropout rate here", _counts_worse_over_zero),
    Claim(_I, "I-T6", "The book's estimate removes the fewest nodes of all the orders before the budget is "
          "spent, fewer than a random order on both data sets", tc.t6_taylor_fewest),
    Claim(_I, "I-T6", "the book's estimate removes the fewest nodes of all the orders, fewer than a "
          "random one", tc.t6_taylor_fewest),
    Claim(_I, "I-T6", "ranking far closer to the oracle than a random order does not make it the better "
          "order", tc.t6_taylor_ranks_closer_than_random),
    Claim(_I, "I-T6", "LAMP's row is the same as magnitude L2's and Hessian (OBD)'s mean Spearman lies "
          "within a thousandth of theirs; on Fashion-MNIST, Hessian (OBD)'s lies within a thousandth of "
          "magnitude L1's", tc.t6_ties),
    Claim(_I, "I-T6", "tied with LAMP and Hessian (OBD);", tc.t6_ties),
    Claim(_I, "I-T6", "its count of nodes removed, a larger one on both data sets", tc.t6_obd_removes_more),
    Claim(_I, "I-T6", "The oracle's order is not the one that removes the most before the budget is spent",
          lambda n: all(_g(n, f"peer_removed_best_{d}") > _g(n, f"peer_removed_oracle_{d}") for d in _DATA)),
    Claim(_I, "I-T5", "the per-class criterion bounds the drop the overall loss lets one class take",
          lambda n: _g(n, "t5_drop_class") < _g(n, "t5_drop_overall")),
    Claim(_I, "I-T2", "it stops within a few tenths of a point of the original's test accuracy",
          lambda n: all(abs(_g(n, f"exh_acc_{d}") - _g(n, f"orig_acc_{d}")) < 0.5 for d in _DATA)),
    Claim(_I, "I-T1", "A correlation of this size leaves room for disagreement",
          lambda n: max(_g(n, "rho_mnist"), _g(n, "rho_fashion_mnist")) < 0.9),
    Claim(_I, "I-B1", "times faster than one forward pass per node on the same batches, with the same values",
          lambda n: _g(n, "bench_speedup") > 1 and bool(n.table("I-B1")["agree"].all())),
    Claim(_I, "I-F5", "Pruning hurts the classes unequally",
          lambda n: _g(n, "f5_best_acc") - _g(n, "f5_worst_acc") > 10),
    Claim(_I, "I-T2", "Importance computed once removes the wrong set of nodes", tc.once_wrong_set),
    Claim(_R, "R-T4", "Its Table 3.4 gives a mean of 0.8677 after removing one", tc.fashion_first_node),
    Claim(_R, "R-T4", "already lies below the range of one network's mean from n = 32 on",
          lambda n: tc.fashion_draft_below_from(n, 32)),
    Claim(_R, "R-S1", "here it is the wider on both data sets",
          lambda n: all(_g(n, f"ci_half_max_n_{d}") > _g(n, f"mask_se_max_n_{d}") for d in _DATA)),
    Claim(_R, "R-S2", "the negative change is a fall of the mean, towards the draft's lower one; the paired "
          "interval only just excludes no change", tc.paired_init),
    Claim(_R, "R-S3", "a closer fit on MNIST than the draft's reading gives",
          lambda n: len(tc.within(n, "R-S3-mnist")) > len(tc.within(n, "R-T3"))),
    Claim(_R, "R-S3", "its range, too, reaches down to no nodes",
          lambda n: tc.range_from_zero(n, "R-S3-mnist") == {int(_g(n, "alg2_last_n"))}),
    Claim(_R, "R-T3", "low* of R-T3 at every n, of R-T6 at n = 3, 4 and 8",
          lambda n: tc.range_from_zero(n, "R-T3") == set(n.params["shrink_n_values"])
          and tc.range_from_zero(n, "R-T6") == {3, 4, 8}),
    Claim(_R, "R-T3", "a peak at n = 2 on MNIST and at n = 3 on Fashion-MNIST", tc.alg2_shapes),
    Claim(_R, "R-T3", "ours fall from n = 1 on, under both readings and on both data sets", tc.alg2_shapes),
    Claim(_R, "R-S5", "our draft reading never keeps a group (R-S5), where the draft's Table 3.3 holds runs "
          "that removed 8 nodes",
          lambda n: n.table("R-S5").loc[8, "share kept"] == 0 == _g(n, "alg2_kept_last_mnist")
          and tc.rows(n, "R-T3", "max", "draft 004")[8] == 8),
    Claim(_R, "R-T3", "a range that reaches down to no nodes at every n, and they peak at n = 2 where ours "
          "fall from n = 1 on",
          lambda n: tc.range_from_zero(n, "R-T3") == set(n.params["shrink_n_values"]) and tc.alg2_shapes(n)),
    Claim(_D, "D-T1", "our rank-3 loadings fall short on 3, 4 and 7", lambda n: _g(n, "dt1_dec") < 83 - 5),
    Claim(_D, "D-T2", "come close on 3, 4 and 9", lambda n: abs(_g(n, "dt2_dec") - 68) < 5),
    Claim(_D, "D-T3", "our 15 loadings on all digits lie far above its 64 %",
          lambda n: _g(n, "dt3_dec") > 64 + 10),
    Claim(_D, "D-T4", "rank 100 (table D-T4) lies above both, level with the full images",
          lambda n: (a := _d_t4(n))["Tucker rank 100"] > max(a["Tucker rank 15"], a["Tucker rank 200"])
          and abs(a["Tucker rank 100"] - a["full data"]) < 0.5),
    Claim(_D, "D-T4", "only rank 15's mean lies below the full images' range",
          lambda n: (low := 100 * n.table("D-T4").loc["accuracy range low", "full data"])
          > _d_t4(n)["Tucker rank 15"] and all(_d_t4(n)[f"Tucker rank {r}"] >= low for r in (100, 200))),
    Claim(_D, "D-T4", "accuracy does not rise with every added component",
          lambda n: (a := _d_t4(n))["Tucker rank 200"] < a["Tucker rank 100"]),
    Claim(_D, "D-T4", "ours stays within a few points of the full images at every rank",
          lambda n: all((a := _d_t4(n))["full data"] - a[f"Tucker rank {r}"] < 5 for r in (15, 100, 200))),
    Claim(_D, "D-T5", "Neither plan's speedup comes near its saving in operations",
          lambda n: _g(n, "lenet_speedup") < 0.75 * _g(n, "lenet_flops_ratio")
          and _g(n, "lenet_draft_speedup") < 0.75 * (lambda f: f["original"] / f["draft's plan, fine-tuned"])(
              _col(n, "D-T5", "MFLOPs per image"))),
    Claim(_D, "D-T5", "where the draft found its decomposed network 8 % slower",
          lambda n: _g(n, "lenet_draft_speedup") > 1 and round(100 * (1.945 / 1.807 - 1)) == 8),
    Claim(_D, "D-F8", "the earlier a convolution, the less it tolerates",
          lambda n: (lambda r: r["features.0"] < r["features.2"] < r["features.5"] < r["features.7"])(
              n.table("D-F8").loc[0.9]) and _g(n, "prune_first") < _g(n, "prune_last")),
    Claim(_D, "D-F9", "here that holds up to rank 8 and reverses above it",
          lambda n: _d_f9(n, 1, 8, True) and _d_f9(n, 16, 56, False)),
    Claim(_D, "D-F9", "The kernel's reconstruction error falls with either rank",
          lambda n: all(n.table("D-F9")[c].is_monotonic_decreasing for c in n.table("D-F9"))),
    Claim(_D, "D-T6", "more than the original's", lambda n: _g(n, "k_acc_ft") > _g(n, "cifar_acc")),
    Claim(_D, "D-T6", "at k = 4 ours loses more than the report's, at k = 5 to 7 about as much", _d_t6_drops),
    Claim(_D, "D-T6", "its own log prints 88.02 % on the line of k = 5; its k = 4 is 84.59 %",
          lambda n: DRAFT_003_K[5] == 88.02 and DRAFT_003_K[4] == 84.59),
    Claim(_D, "D-T7", "Equal parameters and nearly equal operations do not mean equal time", _d_t7_spread),
    Claim(_D, "D-T7", "CP runs at",
          lambda n: _g(n, "cp_speedup") == min(_col(n, "D-T7", "speedup")[m] for m in _METHODS)),
    Claim(_V, "V-T2", "Ours keeps a smaller share of its parameters than Li et al.'s",
          lambda n: 1 / _g(n, "final_ratio") < 5.4 / 15.0),
    Claim(_V, "V-T2", "points where they lose none", lambda n: _g(n, "final_drop") > 0.1),
    Claim(_V, "V-T2", "Its multiply-adds fall more than its time does", _v_t2_time),
    # V-T1-published keeps the papers' numbers as printed (typed by hand, in %), unlike the results' fractions
    Claim(_V, "V-T1", "start from full-width networks trained to convergence at about 93 %",
          lambda n: all(92.5 < a < 94.5 for a in n.table("V-T1-published")["test accuracy (%)"].dropna())),
]  # fmt: skip


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def prose(root: Path, chapter: str) -> str:
    """The committed notebook's markdown (what the page shows), whitespace collapsed."""
    nb = nbformat.read(root / CHAPTERS[chapter].notebook, as_version=4)
    return _flat(" ".join(c.source for c in nb.cells if c.cell_type == "markdown"))


def failures(results: Path, root: Path, claims: Iterable[Claim] = CLAIMS) -> list[str]:
    """Every claim whose sentence is gone from its chapter or whose numbers (in `results`, a
    profile's folder) no longer support it: "<item> (<chapter>): <why>: "<fragment>"."."""
    out = []
    for claim in claims:
        where = f"{claim.item} ({claim.chapter})"
        if _flat(claim.fragment) not in prose(root, claim.chapter):
            out.append(f'{where}: the sentence is gone: "{claim.fragment}"')
            continue
        try:
            holds = bool(claim.holds(Numbers(results / claim.chapter)))
        except (KeyError, FileNotFoundError) as err:
            out.append(f'{where}: its numbers are missing ({err}): "{claim.fragment}"')
            continue
        if not holds:
            out.append(f'{where}: the numbers no longer support: "{claim.fragment}"')
    return out
