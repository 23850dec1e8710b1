"""Declared reasons for the verdicts (`verdicts.verdict`): why a comparison row differs from the
draft's number or is not comparable, keyed by (item, quantity) as `Report.compare` records them.
A reason we can test is tested in its chapter; any other is worded as a hypothesis. A reason may
be a function of the run's numbers (`Numbers`), so that it quotes the numbers of the run shown.

Also: the rounding of each draft's printed numbers by item (`ROUNDING`), draft 003's log of its
k sweep (`DRAFT_003_K`), and what a chapter adds under its verdicts (`EXTRAS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from netshrink.book.numbers import Numbers
from netshrink.items import nodes_removed

__all__ = ["DRAFT_003_K", "DRAFT_SPREAD_UNKNOWN", "EXTRAS", "REASONS", "ROUNDING", "Declared", "dt6_drops"]


@dataclass(frozen=True)
class Declared:
    """`kind` "differs" (the reason, used when the numbers differ beyond their tolerance) or
    "not comparable" (always); `why` a text or a function of the run's numbers."""

    kind: Literal["differs", "not comparable"]
    why: str | Callable[[Numbers], str]

    def __post_init__(self) -> None:
        if self.kind not in ("differs", "not comparable"):
            raise ValueError(f"kind={self.kind!r} is not known; allowed values: differs, not comparable")

    def text(self, numbers: Numbers) -> str:
        return self.why(numbers) if callable(self.why) else self.why


# half a unit of the last digit each draft printed, where a float cannot tell (0.9720 -> 0.972)
ROUNDING = {
    **{item: 0.00005 for item in ("I-T2", "R-T1", "R-T2", "R-T3", "R-T4", "R-T5", "R-T6")},  # four decimals
    **{item: 0.005 for item in ("D-T1", "D-T2", "D-T3", "D-T4")},  # "≈ 98": whole percent
    "V-T4": 0.0001,  # a drop: the difference of two accuracies the report's log prints to 0.01 %
}

# what the verdict says of the draft's spread where a row gives none, by item
DRAFT_SPREAD_UNKNOWN = {
    item: "the draft's spread left out: it prints the sd over its trials, not how many trials it ran"
    for item in ("R-T1", "R-T2", "R-T4", "R-T5")
}

# draft 003, Figure 8's log: "Decomposed model, accuracy: X%" printed before the line "k Time for
# forward pass": at k = 8 the ranks are full (R1 = c, R2 = f), the original's accuracy
DRAFT_003_K = {1: 11.34, 2: 50.86, 3: 77.72, 4: 84.59, 5: 88.02, 6: 89.27, 7: 89.50, 8: 89.94}

_ONE_SEED = "one run each, so neither spread is known"
_ONE_SEED_ = "One run each, so neither spread is known"

_WEIGHT_DECAY = (
    'Neither reading of the slides\' "weight decay 0.1" gives their number for this network in our run '
    "(table B-T1 has both). The slides give no epochs and no batch size for it (ours are in the settings "
    "table); a different training length or setting of theirs may account for it: a hypothesis, untested "
    f"here ({_ONE_SEED})."
)
_CIFAR = (
    "The course report names neither its layers nor its optimiser nor its batch size; ours are this "
    "book's (settings table), so two different networks' accuracies stand side by side. The report's "
    "relative findings (lr 0.1 and 1 do not train, pooling and augmentation help) are compared in the text."
)


def _input_seeds(numbers: Numbers) -> str:
    """What D-T1..D-T4's rows are: our mean over `input_seeds` classifiers against the slides' one
    run, or (a run from before that parameter) one run each."""
    seeds = int(numbers.params.get("input_seeds", 1))
    if seeds > 1:
        return f"ours a mean over {seeds} seeds of the classifier, the slides' one run of unknown spread"
    return _ONE_SEED


def _full(numbers: Numbers) -> str:
    text = _input_seeds(numbers)
    return (
        f"{text[0].upper()}{text[1:]}; the slides give no epochs (ours are in the settings table), and "
        "their parameter counts do not follow from their layer sizes (ours are counted from the models), "
        "so their networks may not be ours: a hypothesis, untested here."
    )


_INPUT = (
    "The slides do not say how their test images got loadings, whether the loadings were scaled, or how "
    "long the MLPs trained; ours project the test images on the training images' factors, standardise the "
    "loadings and train the epochs in the settings table. Which of these (or the seed: {seed}) makes the "
    "difference is not tested here: a hypothesis."
)


def _input(numbers: Numbers) -> str:
    return _INPUT.format(seed=_input_seeds(numbers))


def _random(kind: str, data: str, n: int) -> Callable[[Numbers], str]:
    """Random node removal, our mean over networks against the draft's one network: measured from
    each one's own start in rows of their own where the draft gives its intact network (MNIST)."""
    acc = kind == "accuracy"

    def why(numbers: Numbers) -> str:
        nets = int(numbers.params.get("n_networks", 0)) or "our"
        text = (
            f"Our mean over {nets} networks against the draft's one network, which lies outside the range "
            "one of our networks' means takes."
        )
        if data == "MNIST":
            ours, draft = (
                ("base_mean_mnist", "draft_base_acc_mnist")
                if acc
                else ("base_loss_mean_mnist", "draft_base_loss_mnist")
            )
            unit, digits = (" %", 2) if acc else ("", 4)
            mine, theirs = numbers.glue(ours), numbers.glue(draft)
            text += (
                f" The intact networks differ too (our mean {mine:.{digits}f}{unit}, the draft's "
                f"{theirs:.{digits}f}{unit}): the change from each one's own is judged in its own row."
            )
        elif acc and "init_verdict_fashion_mnist" in numbers.glued and n == numbers.glued.get("max_n"):
            text += (
                " One cause tested (R-S2): starting from Keras's initialisation instead of PyTorch's "
                + numbers.glue("init_verdict_fashion_mnist")
                + "."
            )
        if data == "Fashion-MNIST":
            text += (
                " The draft gives no Fashion-MNIST recipe (its section 3.1.2 has tables but no text) "
                "and ours is the MNIST one: a different training of its network is a hypothesis, "
                "untested here."
            )
        return text

    return why


_RANDOM_CHANGE = (
    "Both measured from their own intact network (ours a mean over our networks, the draft's its one "
    "network of section 3.1.1), and the draft's change lies outside the range one of our networks' "
    "change takes. Why its network reacts otherwise to the removal is not tested on MNIST (R-S2 tests "
    "one cause, the initialisation, on Fashion-MNIST): a hypothesis."
)


def _shrink(item: str, reading: str) -> Declared:
    """Algorithm 2's node counts, our mean over networks against the draft's one network."""
    if reading != "draft":
        return Declared(
            "not comparable",
            "Our validation-loss rule, not the draft's (the chapter states both): set beside the "
            "draft's table for reference, not judged.",
        )
    return Declared(
        "differs",
        "Ours counts nodes removed by our reading of the draft's truncated Algorithm 2 (training loss "
        "and accuracy decide, each node drawn once) on our PyTorch networks; the draft's by its own "
        "loop, which is lost, on its one TensorFlow network. Which of these differences matters (the "
        "rule or the network) is untested here: a hypothesis (the chapter lists the candidates).",
    )


def _rows_random() -> dict[tuple[str, str], Declared]:
    out = {}
    for data in ("MNIST", "Fashion-MNIST"):
        for n in (1, 2, 4, 8, 16, 32, 64):
            acc, loss = ("R-T1", "R-T2") if data == "MNIST" else ("R-T4", "R-T5")
            for tail in ("", " (mean over networks)"):
                out[acc, f"{data}: mean test accuracy, {nodes_removed(n)}{tail}"] = Declared(
                    "differs", _random("accuracy", data, n)
                )
                out[loss, f"{data}: mean test loss, {nodes_removed(n)}{tail}"] = Declared(
                    "differs", _random("loss", data, n)
                )
    for n in (1, 2, 4, 8, 16, 32, 64):  # where the draft gives its intact network
        for item, what in (("R-T1", "accuracy"), ("R-T2", "loss")):
            quantity = (
                f"MNIST: change of the mean test {what} from the intact network, {nodes_removed(n)} "
                "(mean over networks)"
            )
            out[item, quantity] = Declared("differs", _RANDOM_CHANGE)
    for n in (1, 2, 3, 4, 8):
        out["R-T3", f"MNIST: mean nodes removed by Algorithm 2, n = {n}"] = Declared(
            "differs",
            "Our Algorithm 2 is a reading of the draft's truncated pseudo-code (the chapter states "
            "its rule and where it departs from the draft's): another rule removes another number of nodes.",
        )
        for item, data in (("R-T3", "MNIST"), ("R-T6", "Fashion-MNIST")):
            for reading in ("draft", "validation loss"):
                what = f"({reading} reading, mean over networks), n = {n}"
                out[item, f"{data}: mean nodes removed by Algorithm 2 {what}"] = _shrink(item, reading)
    return out


_INTACT_DATA = (
    "the draft does not say which images trained its network (ours: a validation split held out); "
    "the seed or the data may account for the difference: a hypothesis, untested here."
)


def _intact_accuracy(numbers: Numbers) -> str:
    """Node importance's network 0 against the draft's one network, beyond the range one of
    Random node pruning's networks takes (network 0 is the same network there)."""
    return (
        "Our network 0 against the draft's one network, which lies outside the range one of our "
        f"networks' accuracy takes; {_INTACT_DATA}"
    )


def _intact_loss(numbers: Numbers) -> str:
    """The intact loss: one network against one (no spread of it is committed); whether the mean
    over Random node pruning's networks (of which this network is the first) lies nearer the
    draft's, computed from that run's glue."""
    text = (
        "This row compares one network with one: no spread of the intact test loss over networks is committed"
    )
    sibling = Numbers(numbers.folder.parent / "random_pruning")
    try:
        mean, nets = float(sibling.glue("base_loss_mean_mnist")), int(sibling.params["n_networks"])
        ours, draft = float(sibling.glue("base_loss_mnist")), float(sibling.glue("draft_base_loss_mnist"))
        same = float(sibling.glue("base_acc_mnist")) == float(numbers.glue("base_acc_mnist"))
    except (KeyError, TypeError, ValueError):
        return f"{text}; {_INTACT_DATA}"
    if not same:
        return f"{text}; {_INTACT_DATA}"
    nearer = abs(mean - draft) < abs(ours - draft)
    text += (
        f". The mean over the {nets} networks of Random node pruning, whose network 0 is this one, is "
        f"{mean:.4f}, {'nearer the draft' if nearer else 'no nearer the draft'}'s {draft:.4f} than this "
        f"network's {ours:.4f}"
    )
    return f"{text}; {_INTACT_DATA}"


def _lenet(numbers: Numbers) -> str:
    ours, plan = numbers.glue("lenet_acc"), numbers.glue("lenet_draft_acc")
    return (
        f"The originals differ (ours {ours:.2f} %, the draft's 98.277 %): from each original, the "
        f"draft's plan loses {ours - plan:.2f} points in ours and 0.05 in the draft's. Training and "
        "fine-tuning epochs are ours (the slides give none)."
    )


def _dt6(numbers: Numbers) -> str:
    k4 = numbers.table("D-T6")
    base, at4 = (100 * float(k4.loc[row, "test accuracy"]) for row in ("original", "k = 4"))  # fractions -> %
    return (
        "Different networks: the report does not describe its Part-3 network, which reaches about 90 % "
        f"(89.94 % at k = 8, full rank); ours is the book's CNN at "
        f"{base:.2f} %. And the report's "
        f"88.02 % is printed on the line of k = 5 of its own log: its k = 4 is 84.59 %. From each "
        f"original, k = 4 costs the report {DRAFT_003_K[8] - DRAFT_003_K[4]:.2f} points and ours "
        f"{base - at4:.2f} (the drops at every k are below this table). The VGG-16 case study sets the same "
        "sweep on a network nearer 90 % beside the report (its table V-T4)."
    )


def _vt4(numbers: Numbers) -> str:
    base = 100 * float(numbers.table("V-T4").loc["original", "test accuracy"])
    return (
        "Different networks: the report does not describe its Part-3 network (89.94 % at k = 8, full "
        f"rank); ours is this chapter's VGG-16 at {base:.2f} %. One run each, so "
        "neither spread is known. How much accuracy a rank cut costs depends on how much of each kernel "
        "the low ranks hold, which differs from network to network (a hypothesis, untested here)."
    )


REASONS: dict[tuple[str, str], Declared] = {
    ("V-T4", "VGG-16 base: accuracy lost at k = 4 from its own original, no fine-tuning"): Declared(
        "differs", _vt4
    ),
    ("B-T1", "one conv layer + dense 100: test accuracy"): Declared("differs", _WEIGHT_DECAY),
    ("B-T1", "one conv layer + dense 100, L2 reading: test accuracy"): Declared("differs", _WEIGHT_DECAY),
    ("B-T1", "two conv layers, 2x2 max-pool: test accuracy"): Declared(
        "differs",
        f"{_ONE_SEED_}, and the epochs are ours (the slides give none): a seed or the training length "
        "may account for the difference (a hypothesis, untested here).",
    ),
    ("B-T1", "two conv layers, 2x2 max-pool, L2 reading: test accuracy"): Declared("differs", _WEIGHT_DECAY),
    ("B-T1", "CIFAR-10 CNN, lr 0.001: test accuracy"): Declared("not comparable", _CIFAR),
    ("B-T1", "CIFAR-10 CNN with max-pooling: test accuracy"): Declared("not comparable", _CIFAR),
    ("B-T1", "CIFAR-10 CNN with max-pooling and augmentation: test accuracy"): Declared(
        "not comparable", _CIFAR
    ),
    ("I-T2", "MNIST: test accuracy of the 128-node network"): Declared("differs", _intact_accuracy),
    ("I-T2", "MNIST: test loss of the 128-node network"): Declared("differs", _intact_loss),
    **_rows_random(),
    **{
        (item, f"{what}: test accuracy, full images"): Declared("differs", _full)
        for item, what in (("D-T1", "digits 3, 4, 7"), ("D-T2", "digits 3, 4, 9"), ("D-T3", "all digits"))
    },
    ("D-T4", "all digits: test accuracy, full images, 20 hidden"): Declared("differs", _full),
    **{
        (item, f"{what}: test accuracy, CP rank {rank}"): Declared("differs", _input)
        for item, what, rank in (
            ("D-T1", "digits 3, 4, 7", 3),
            ("D-T2", "digits 3, 4, 9", 3),
            ("D-T3", "all digits", 15),
        )
    },
    **{
        ("D-T4", f"all digits: test accuracy, Tucker rank {rank}"): Declared("differs", _input)
        for rank in (15, 100, 200)
    },
    ("D-T5", "week-6 network, the draft's plan: test accuracy after fine-tuning"): Declared(
        "differs", _lenet
    ),
    ("D-T5", "week-6 network, the draft's plan: time decomposed / original"): Declared(
        "not comparable",
        "Times on different machines and kernels: the slides name neither their hardware "
        "nor how they timed; ours took turns with the original in one run (the chapter's timing note).",
    ),
    ("D-T6", "CIFAR-10 CNN: test accuracy at k = 4, no fine-tuning"): Declared("not comparable", _dt6),
    ("D-T6", "CIFAR-10 CNN: test accuracy at k = 4, fine-tuned (the draft: none said)"): Declared(
        "not comparable",
        "The report mentions no fine-tuning, and its network is another (see the row "
        "above): a fine-tuned number of ours beside an untuned one of another network says nothing.",
    ),
    ("D-T6", "CIFAR-10 CNN: forward time at k = 4 / original"): Declared(
        "not comparable",
        "Another network on other hardware, and the report's log does not print its original's "
        "time, so its 77 % cannot be checked; its k = 4 line reads 2.38 s (k = 8, full rank: "
        "3.01 s).",
    ),
}


def dt6_drops(numbers: Numbers) -> pd.DataFrame:
    """D-T6 as drops: each network's test accuracy (%) without fine-tuning at each k, and its drop
    in points from its own original (ours: D-T6's `original` row, whose `test accuracy` is a
    fraction; the report's: its k = 8, full rank)."""
    accuracy = 100 * numbers.table("D-T6")["test accuracy"]
    base = float(accuracy["original"])
    rows = []
    for k, draft_acc in DRAFT_003_K.items():
        label = f"k = {k}"
        ours = float(accuracy[label]) if label in accuracy.index else math.nan
        rows.append(
            {
                "k": k,
                "report's accuracy (%)": draft_acc,
                "report's drop": DRAFT_003_K[8] - draft_acc,
                "our accuracy (%)": ours,
                "our drop": base - ours,
            }
        )
    return pd.DataFrame(rows).set_index("k")


def _dt6_extra(numbers: Numbers) -> str:
    drops = dt6_drops(numbers)
    lines = [
        "| k | report's accuracy (%) | report's drop | our accuracy (%) | our drop |",
        "|---|---|---|---|---|",
    ]
    for k, r in drops.iterrows():
        lines.append(f"| {k} | {r.iloc[0]:.2f} | {r.iloc[1]:.2f} | {r.iloc[2]:.2f} | {r.iloc[3]:.2f} |")
    return "\n".join(
        [
            "**D-T6 as drops.** Each network's test accuracy without fine-tuning at each k, and its drop in "
            "points from its own original: the report's original is its k = 8 (full rank, 89.94 %, read from "
            "its Figure 8 log, where each accuracy line precedes its k line); ours is the row `original` of "
            "D-T6. Our base is far below the report's 90 %: a base as strong needs a rerun of this chapter "
            "(over 100 minutes of CPU), not made for this edition.",
            "",
            *lines,
        ]
    )


EXTRAS: dict[str, Callable[[Numbers], str]] = {
    "tensor_decomposition": _dt6_extra,
    "vgg_case_study": lambda numbers: (
        "Draft 004 leaves this chapter a heading, so no draft number of its own stands here; the published "
        "results beside ours are in tables V-T1 and V-T2. The row above sets the course report's k sweep "
        "(draft 003) beside ours on this chapter's VGG-16 base (table V-T4)."
    ),
}
