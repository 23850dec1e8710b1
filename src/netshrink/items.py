"""Names that the chapters' findings write and the book's verdicts read: which results file holds
which of Algorithm 2's tables, and the words of a random-removal comparison. One place for both,
since the book never imports an experiment."""

from __future__ import annotations

__all__ = ["ACCEPTANCE_ITEM", "DRAFT_ITEMS", "MEANS_ITEM", "READING_ITEM", "nodes_removed", "reading_stem"]

DRAFT_ITEMS = {"mnist": "R-T3", "fashion-mnist": "R-T6"}
"""The draft's table of Algorithm 2 (Table 3.3, Table 3.6) for each data set, by item."""
READING_ITEM, MEANS_ITEM, ACCEPTANCE_ITEM = "R-S3", "R-S4", "R-S5"
"""The book's own tables of Algorithm 2, apart from the draft's items: our validation-loss reading
beside the draft's table (per data set), both readings' mean results (per data set), and the share
of draws kept on MNIST."""
_READINGS = ("draft", "validation loss")


def reading_stem(dataset: str, reading: str) -> str:
    """The results file stem of Algorithm 2's node counts in `reading` on `dataset`: the draft's
    item for the draft's reading ('R-T3'), else the book's own ('R-S3-mnist')."""
    if reading not in _READINGS:
        raise ValueError(
            f"reading={reading!r} is not known; allowed values: {', '.join(map(repr, _READINGS))}"
        )
    if dataset not in DRAFT_ITEMS:
        raise ValueError(
            f"dataset={dataset!r} is not known; allowed values: {', '.join(map(repr, DRAFT_ITEMS))}"
        )
    return DRAFT_ITEMS[dataset] if reading == "draft" else f"{READING_ITEM}-{dataset}"


def nodes_removed(n: int) -> str:
    """'1 random node removed', '8 random nodes removed': the words of a comparison's quantity."""
    return f"{n} random node{'' if n == 1 else 's'} removed"
