"""R-B1 of the Random node pruning chapter: the batched evaluation of many keep-masks
(`masking.evaluate_masks`) timed side by side with the per-mask loop on the same masks and data,
with the spread of the repeats."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch
from torch import nn

from netshrink import measure
from netshrink.compress import naive, prune
from netshrink.compress.masking import evaluate_masks
from netshrink.findings import Findings
from netshrink.progress import update as report_progress

__all__ = ["benchmark_findings", "mask_benchmark", "time_mask_evaluation"]


def time_mask_evaluation(
    model: nn.Module, layer: str, masks: torch.Tensor, loader: Iterable, repeats: int = 3
) -> pd.DataFrame:
    """Wall time of `masking.evaluate_masks` and of the per-mask loop on the same masks and data,
    and whether they agree. One row per method: the median `seconds` of `repeats` and their
    quartiles (`q25`, `q75`), the `speedup` over the loop (medians), and its range from the
    quartiles (`speedup low`: the loop's q25 over the method's q75; `speedup high` the reverse)."""
    times, results = measure.time_repeats(
        {
            "batched": lambda: evaluate_masks(model, layer, loader, keep=masks),
            "per-mask loop": lambda: naive.evaluate_masks_naive(model, layer, loader, keep=masks),
        },
        repeats,
    )
    fast, slow = results["batched"], results["per-mask loop"]
    agree = all(
        torch.allclose(torch.as_tensor(getattr(fast, f)), torch.as_tensor(getattr(slow, f)), atol=1e-4)
        for f in ("loss", "acc", "intact_loss", "intact_acc")
    )
    q = pd.DataFrame(
        {k: pd.Series(v).quantile([0.25, 0.5, 0.75]).to_numpy() for k, v in times.items()},
        index=["q25", "seconds", "q75"],
    ).T
    loop = q.loc["per-mask loop"]
    return q[["seconds", "q25", "q75"]].assign(
        speedup=loop["seconds"] / q["seconds"],
        **{"speedup low": loop["q25"] / q["q75"], "speedup high": loop["q75"] / q["q25"]},
        masks=len(masks),
        repeats=repeats,
        agree=agree,
    )


def benchmark_findings(bench: pd.DataFrame) -> Findings:
    """The batched evaluation's speedup over the loop with its range over the repeats' quartiles,
    whether the two spreads are apart (the batched q75 below the loop's q25), and whether the
    two agree, as words for the prose."""
    fast, slow = bench.loc["batched"], bench.loc["per-mask loop"]
    apart = bool(fast["q75"] < slow["q25"])
    return Findings({
        "speedup": float(fast["speedup"]), "speedup_low": float(fast["speedup low"]),
        "speedup_high": float(fast["speedup high"]), "bench_repeats_run": int(fast["repeats"]),
        "batched_seconds": float(fast["seconds"]), "loop_seconds": float(slow["seconds"]),
        "bench_apart": "do not overlap" if apart else "overlap (no difference)",
        "bench_verdict": "the batched evaluation is the faster" if apart
        else "no difference: the repeats' quartiles overlap",
        "bench_agreement": "agree" if bool(fast["agree"]) else "do NOT agree",
    })  # fmt: skip


def mask_benchmark(
    model: nn.Module, loader: Iterable, *, n_masks: int, repeats: int, n_remove: int = 16, seed: int = 0,
    layer: str = "hidden.0",
) -> pd.DataFrame:  # fmt: skip
    """R-B1: `time_mask_evaluation` of `n_masks` random masks that each remove `n_remove` nodes."""
    report_progress(stage="mask benchmark")
    n_nodes = model.get_submodule(layer).out_features
    masks = prune.random_node_masks(n_nodes, n_remove, n_masks, generator=torch.Generator().manual_seed(seed))
    return time_mask_evaluation(model, layer, masks, loader, repeats=repeats)
