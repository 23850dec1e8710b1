"""A verdict for every number set beside a draft's: *agrees*, *differs* (with its reason) or *not
comparable* (with why).

The rule (`verdict`): a row declared *not comparable* in `reasons.REASONS` is that. Otherwise
ours agrees when |ours - draft| is within the tolerance: half a unit of the draft's last printed
digit (its rounding) plus the spreads of ours and of the draft's (95 % half-widths, combined in
quadrature) where known: the row's own `spread` and `draft_spread` (`Report.compare`), or for a
committed run what its tables give (`committed_spread`). Beyond it the row *differs*, and must
have a declared reason; a row without one raises `MissingVerdict` naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from scipy import stats

from netshrink.book import escape, reasons
from netshrink.book.numbers import Numbers
from netshrink.items import reading_stem

__all__ = [
    "KINDS",
    "MissingVerdict",
    "Verdict",
    "committed_spread",
    "rounding",
    "verdict",
    "verdict_text",
    "verdicts_section",
]

Kind = Literal["agrees", "differs", "not comparable"]
KINDS: tuple[str, ...] = ("agrees", "differs", "not comparable")


class MissingVerdict(ValueError):
    """A comparison row beyond its tolerance with no declared reason."""


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str

    def text(self) -> str:
        return f"**{self.kind}**: {self.reason}"


def rounding(row: dict[str, Any]) -> float:
    """Half a unit of the last digit the draft printed: declared by item in `reasons.ROUNDING`
    (a float drops trailing zeros: the draft's "0.9720" is 0.972), else read from the number, an
    accuracy as the percent the drafts print (0.801 -> 80.1 % -> 0.0005; 0.8 -> 0.005; 59560.0 -> 0.5)."""
    if row["item"] in reasons.ROUNDING:
        return reasons.ROUNDING[row["item"]]
    scale = 100.0 if _is_percent(row) else 1.0
    exponent = Decimal(repr(round(float(row["draft"]) * scale, 8))).normalize().as_tuple().exponent
    return 0.5 * 10.0 ** min(int(exponent), 0) / scale


def _t95(n: int) -> float:
    return float(stats.t.ppf(0.975, n - 1))


_RANDOM = re.compile(
    r"^(MNIST|Fashion-MNIST): mean test accuracy, (\d+) random nodes? removed( \(mean over networks\))?$"
)
_INTACT_MNIST = "MNIST: test accuracy of the 128-node network"
_SHRINK = re.compile(r"^MNIST: mean nodes removed by Algorithm 2, n = (\d+)$")
_SHRINK_READINGS = re.compile(
    r"^(MNIST|Fashion-MNIST): mean nodes removed by Algorithm 2 "
    r"\((draft|validation loss) reading, mean over networks\), n = (\d+)$"
)


def committed_spread(row: dict[str, Any], numbers: Numbers) -> tuple[float, str] | None:
    """(95 % half-width of ours, what it is) where a committed run's tables give one, else None.

    The draft's number is one network's; ours is one network's or a mean over networks. Node
    importance's intact MNIST network: the range one network's accuracy takes over Random node
    pruning's networks, of which it is the first (`_intact_spread`). Random
    pruning: one network's mean accuracy varies between networks as R-S1's sd between networks
    (a mean over `m` networks against one network: the prediction range, sqrt(1 + 1/m) wider).
    Algorithm 2: one network's mean over runs has R-T3's sd over the runs; a mean over networks
    has the 95 % interval of its table, widened to the prediction range of one network's mean.
    """
    quantity = row["quantity"]
    if row["item"] == "I-T2" and quantity == _INTACT_MNIST:
        return _intact_spread(numbers)
    if (m := _RANDOM.match(quantity)) and row["item"] in ("R-T1", "R-T4"):
        line = numbers.table(f"R-S1-{m[1].lower()}").loc[int(m[2])]
        nets, sd = int(line["networks"]), float(line["sd between networks"])
        if m[3]:
            return _t95(nets) * sd * math.sqrt(1 + 1 / nets), (
                f"95 % range of one network's mean about our mean over {nets} networks (R-S1)"
            )
        return _t95(
            nets
        ) * sd, f"95 % range of one network's mean, from the sd between our {nets} networks (R-S1)"
    if (m := _SHRINK.match(quantity)) and row["item"] == "R-T3":
        runs = int(numbers.params["shrink_runs"])
        sd = float(numbers.table("R-T3").query("statistic == 'std' and source == 'ours'")[m[1]].iloc[0])
        return _t95(runs) * sd / math.sqrt(runs), f"95 % interval of our mean over {runs} runs"
    if (m := _SHRINK_READINGS.match(quantity)) and row["item"] in ("R-T3", "R-T6"):
        table = reading_stem(m[1].lower(), m[2])
        t = numbers.table(table).set_index("source", append=True)
        nets = int(numbers.params["shrink_networks"])
        half = float(t.loc[("ci95 high", "ours"), m[3]]) - float(t.loc[("mean over networks", "ours"), m[3]])
        return half * math.sqrt(nets + 1), (
            f"95 % range of one network's mean about our mean over {nets} networks ({table})"
        )
    return None


def _intact_spread(numbers: Numbers) -> tuple[float, str] | None:
    """Node importance's network 0 on MNIST is Random node pruning's network 0 (the same recipe
    and seeds): the range one network's test accuracy takes is read from that chapter's 95 %
    interval of the mean over its networks (`base_low_mnist`, `base_high_mnist`, in %), widened
    by sqrt(n + 1). None where that run, its values, or the same network 0 are missing."""
    sibling = Numbers(numbers.folder.parent / "random_pruning")
    try:
        low, high = float(sibling.glue("base_low_mnist")), float(sibling.glue("base_high_mnist"))
        nets = int(sibling.params["n_networks"])
        same = float(sibling.glue("base_acc_mnist")) == float(numbers.glue("base_acc_mnist"))
    except (KeyError, TypeError, ValueError):
        return None
    if not same or nets < 2 or not math.isfinite(high - low):
        return None
    half = (high - low) / 2 / 100 * math.sqrt(nets + 1)  # % -> fraction, as the row's numbers
    return half, (
        f"95 % range of one network's accuracy about the mean over {nets} networks: the 95 % interval "
        f"of that mean in Random node pruning, widened by sqrt({nets} + 1); its network 0 is this one"
    )


def _is_percent(row: dict[str, Any]) -> bool:
    return "accuracy" in row["quantity"] and abs(float(row["ours"])) <= 1.0


def _show(row: dict[str, Any], value: float) -> str:
    if _is_percent(row):
        return f"{100 * value:.2f} %"
    return f"{int(value):,}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:.4g}"


def _fmt(value: float, sign: str = "") -> str:
    return f"{value:{sign}.2f}" if abs(value) >= 1 else f"{value:{sign}.3g}"


def _gap(row: dict[str, Any], value: float, sign: str = "") -> str:
    return f"{_fmt(100 * value, sign)} points" if _is_percent(row) else _fmt(value, sign)


def verdict(row: dict[str, Any], numbers: Numbers) -> Verdict:
    """The verdict of one comparison row (`Report.compare`'s) of the run in `numbers`."""
    declared = reasons.REASONS.get((row["item"], row["quantity"]))
    if declared is not None and declared.kind == "not comparable":
        return Verdict("not comparable", declared.text(numbers))
    if isinstance(row["draft"], str):
        raise MissingVerdict(
            f"{row['item']}: {row['quantity']}: the draft's {row['draft']!r} is a text; "
            f"declare it not comparable (or a number) in reasons.REASONS"
        )
    ours, draft = float(row["ours"]), float(row["draft"])
    spreads, basis = [], [f"the draft's rounding ({_gap(row, rounding(row))})"]
    if row.get("spread") is not None:
        spreads.append(float(row["spread"]))
        what = f": {row['spread_what']}" if row.get("spread_what") else ""
        basis.append(f"our spread ({_gap(row, spreads[-1])}{what})")
    elif (given := committed_spread(row, numbers)) is not None:
        spreads.append(given[0])
        basis.append(f"our spread ({_gap(row, given[0])}: {given[1]})")
    else:
        basis.append("our spread unknown" + ("" if "mean over networks" in row["quantity"] else " (one run)"))
    if row.get("draft_spread") is not None:
        spreads.append(float(row["draft_spread"]))
        what = f": {row['draft_spread_what']}" if row.get("draft_spread_what") else ""
        basis.append(f"the draft's spread ({_gap(row, spreads[-1])}{what})")
    else:
        basis.append(reasons.DRAFT_SPREAD_UNKNOWN.get(row["item"], "the draft's spread not given"))
    tolerance = rounding(row) + math.hypot(0.0, *spreads)
    within = "; ".join(basis)
    if abs(ours - draft) <= tolerance:
        return Verdict(
            "agrees",
            f"ours {_gap(row, ours - draft, '+')} from the draft's, within {_gap(row, tolerance)}: {within}.",
        )
    if declared is None:
        raise MissingVerdict(
            f"{row['item']}: {row['quantity']}: ours {_show(row, ours)} and the draft's "
            f"{_show(row, draft)} differ beyond {_gap(row, tolerance)} and no reason is "
            f"declared in reasons.REASONS"
        )
    return Verdict(
        "differs",
        f"ours {_gap(row, ours - draft, '+')} from the draft's, beyond {_gap(row, tolerance)} ({within}). "
        f"{declared.text(numbers)}",
    )


def verdict_text(row: dict[str, Any], numbers: Numbers) -> str:
    """The verdict as a page shows it; a row that has none (or whose run lacks the numbers its
    reason quotes) shows **no verdict** and why, for the committed results' test to catch."""
    try:
        return verdict(row, numbers).text()
    except (MissingVerdict, KeyError, FileNotFoundError) as err:
        return f"**no verdict**: {escape.text(str(err).strip(chr(39)))}"


def verdicts_section(chapter: str, rows: list[dict[str, Any]], numbers: Numbers) -> str:
    """MyST for a chapter page: "Beside the drafts", every comparison row with its verdict, and
    what the chapter adds (`reasons.EXTRAS`)."""
    out = ["## Beside the drafts", ""]
    if rows:
        out += [
            "The drafts' numbers that this chapter sets beside its own (not every number a draft "
            "prints), each with a verdict: *agrees* within the draft's "
            "rounding and the spreads known, *differs* (with the reason, a hypothesis where no run here "
            "tests it) or *not comparable* (with why).",
            "",
            "| item | quantity | ours | draft's | source | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            draft = r["draft"] if isinstance(r["draft"], str) else _show(r, float(r["draft"]))
            cells = [
                r["item"],
                r["quantity"],
                _show(r, float(r["ours"])),
                draft,
                r["source"],
                escape.Markup(verdict_text(r, numbers)),  # the book's own words; the rest from the run
            ]
            out.append("| " + " | ".join(escape.text(c) for c in cells) + " |")
        out.append("")
    else:
        out += ["No draft reports a number that this chapter's run sets beside its own.", ""]
    extra = reasons.EXTRAS.get(chapter)
    if extra is not None:
        out += [extra(numbers), ""]
    return "\n".join(out)
