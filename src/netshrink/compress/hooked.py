"""The hooked passes of `masking.evaluate_masks`, for a layer of any model: forward hooks stack
one copy of an output per mask along the batch, so the later layers run once on (masks x images)
rows. Passes are kept small (`PASS_BUDGET`) so that no pass makes a large temporary.

- `hooked_sums`: any keep-masks; the hook sits on the layer itself.
- `next_layer_sums`: masks that each remove one node, or one more node than the mask before (a
  sweep of prefixes), when the next weighted layer takes the layer's nodes as they are
  (`next_layer.find_next_layer`); the hook sits on that next layer and subtracts each node's
  contribution (summed along a sweep), so neither the layer nor the next one runs per mask.
"""

from __future__ import annotations

import torch
from torch import nn

from netshrink import allocator
from netshrink.compress.next_layer import NextLayer
from netshrink.metrics import class_sums

__all__ = [
    "PASS_BUDGET",
    "check_runs_once",
    "hooked_sums",
    "next_layer_sums",
    "pass_budget",
    "replays",
    "rows_per_pass",
]

# Elements of the largest activation of one hooked pass. On the CPU 1 MB in float32: such
# temporaries stay in cache and below glibc's malloc thresholds, so the allocator reuses them
# instead of mapping fresh pages that the kernel must zero on every pass. Measured on conv1 of
# Conv4Net (1,000 images, 1 thread): 4 MB passes spent 30 % of the CPU time in the kernel
# (3.4 M page faults), 1 MB passes none (0 faults) and ran 1.6x faster; the unblocked path
# spent 52 %. Where the process keeps freed memory (`allocator.keep_freed_memory`, as every
# chapter does) no block faults whatever its size, and 16 MB passes (fewer, larger kernels) ran
# the next-layer path on conv3 of Conv4Net (1,000 images, 2 threads) 2.1x faster than 1 MB ones
# (4.0 s against 8.5 s, 0.1 s system); 32 and 64 MB were no faster. On a GPU, 256 MB.
PASS_BUDGET = {"cpu": 2**18, "cpu, freed memory kept": 2**22, "cuda": 2**26}


def pass_budget(device: torch.device) -> int:
    """`PASS_BUDGET` for `device` (and, on the CPU, for the allocator's setting)."""
    if device.type == "cpu" and allocator.keeps_freed_memory():
        return PASS_BUDGET["cpu, freed memory kept"]
    return PASS_BUDGET.get(device.type, PASS_BUDGET["cpu"])


def rows_per_pass(model: nn.Module, module: nn.Module, sample: torch.Tensor) -> int:
    """How many input rows (masks x images) one hooked pass may hold: `pass_budget` elements
    over the largest output per row of `module` and of every module that runs after it.
    `sample` is one input row, (1, ...)."""
    sizes: list[int] = []
    seen = [False]

    def after(mod, _inputs, output):
        if mod is module:
            seen[0] = True
        if seen[0] and isinstance(output, torch.Tensor):
            sizes.append(output.numel())

    leaves = [m for m in model.modules() if m is module or not any(True for _ in m.children())]
    handles = [m.register_forward_hook(after) for m in leaves]
    try:
        model(sample)
    finally:
        for h in handles:
            h.remove()
    return max(1, pass_budget(sample.device) // max(sizes, default=1))


def check_runs_once(model: nn.Module, layer: str, sample: torch.Tensor) -> None:
    """A ValueError unless `layer` runs exactly once in a forward pass of `sample`: the hooked
    passes stack one copy of its output per mask, which a shared or unused layer breaks."""
    runs = [0]

    def count(_module, _inputs):
        runs[0] += 1

    handle = model.get_submodule(layer).register_forward_pre_hook(count)
    try:
        model(sample)
    finally:
        handle.remove()
    if runs[0] != 1:
        raise ValueError(
            f"layer={layer!r} runs {runs[0]} times in one forward pass; allowed: a layer that runs once "
            "(a layer whose weights are shared between calls, or an unused one, cannot be masked here)"
        )


def replays(model: nn.Module, module: nn.Module, sample: torch.Tensor) -> bool:
    """Whether the model run on an empty batch, with `module`'s output replaced by the output it
    gave for `sample`, returns `sample`'s logits: true when nothing after `module` uses an earlier
    activation or the input's batch size. Then the masked passes skip the layers before `module`."""
    kept: list[torch.Tensor] = []

    def keep_or_replay(_module, _inputs, output):
        if kept:
            return kept[0]
        kept.append(output)
        return None

    handle = module.register_forward_hook(keep_or_replay)
    try:
        logits = model(sample)
        replayed = model(sample[:0])
    except (RuntimeError, ValueError, IndexError):  # the model used the empty batch's size
        return False
    finally:
        handle.remove()
    return replayed.shape == logits.shape and torch.allclose(replayed, logits)


def _stacked_passes(
    model, module, x, y, n_masks: int, chunk: int | None, n_classes: int, accuracy: bool, stack
):
    """Per-class sums of the intact model (row 0) and of the model under masks 0..n_masks-1
    (rows 1..n_masks): a forward hook replaces `module`'s output by `stack(input, output, start,
    stop)`, the outputs under masks start..stop-1 stacked along the batch ((stop-start)*n rows).
    Passes hold at most `rows_per_pass` rows (`chunk` masks, default as many as fit, times a
    block of images). When the model allows it (`replays`), the intact pass runs once on the
    whole batch and the masked passes replay its input and output of `module`, a block of images
    at a time, on an empty batch; else each block reruns the layers before `module`."""
    rows = rows_per_pass(model, module, x[:1])
    t = chunk or max(1, min(n_masks, rows))
    block = max(1, rows // t)
    replay = n_masks > 0 and replays(model, module, x[:1])
    loss_sum = torch.zeros(n_masks + 1, n_classes, dtype=torch.float64, device=y.device)
    correct = torch.zeros(n_masks + 1, n_classes, dtype=torch.long, device=y.device) if accuracy else None
    intact: list[torch.Tensor] = []  # the input and output of `module` in the intact pass
    current: list[int] = []  # the masks of the pass: start, stop

    def replace(_module, inputs, output):
        if not current:
            intact[:] = [inputs[0], output]
            return None
        return stack(*(intact if replay else (inputs[0], output)), *current)

    def add(first: int, logits: torch.Tensor, yb: torch.Tensor) -> None:
        sums = class_sums(logits, yb, n_classes, accuracy)
        loss_sum[first : first + len(logits)] += sums[0]
        if accuracy:
            correct[first : first + len(logits)] += sums[1]

    def masked_passes(xb: torch.Tensor, yb: torch.Tensor) -> None:
        for start in range(0, n_masks, t):
            current[:] = [start, min(start + t, n_masks)]
            add(1 + start, model(xb[:0] if replay else xb).view(current[1] - start, len(yb), -1), yb)

    handle = module.register_forward_hook(replace)
    try:
        if replay:  # one intact pass on the whole batch, its activations replayed block by block
            add(0, model(x).unsqueeze(0), y)
            held = list(intact)
            for b in range(0, len(x), block):
                intact[:] = [held[0][b : b + block], held[1][b : b + block]]
                masked_passes(x[b : b + block], y[b : b + block])
        else:
            for b in range(0, len(x), block):
                current.clear()
                add(0, model(x[b : b + block]).unsqueeze(0), y[b : b + block])
                masked_passes(x[b : b + block], y[b : b + block])
    finally:
        handle.remove()
    return loss_sum, correct


def hooked_sums(model, module, x, y, keep: torch.Tensor, chunk: int | None, n_classes: int, accuracy: bool):
    """Per-class sums for any layer and any keep-masks (t, n_nodes): the layer's output
    (n, n_nodes, ...) becomes t copies, copy j multiplied by keep[j]."""

    def stack(_input, output, start, stop):
        factor = keep[start:stop].to(output.dtype).view(stop - start, 1, -1, *([1] * (output.dim() - 2)))
        return (output.unsqueeze(0) * factor).flatten(0, 1)

    return _stacked_passes(model, module, x, y, len(keep), chunk, n_classes, accuracy, stack)


def next_layer_sums(
    model,
    nxt: NextLayer,
    x,
    y,
    nodes: torch.Tensor,
    chunk: int | None,
    n_classes: int,
    accuracy: bool,
    cumulative: bool = False,
):
    """Per-class sums for removing each of `nodes` alone (or, `cumulative`, nodes[0..j] together
    for mask j): the next layer's output becomes t copies, each without what its removed input
    nodes contribute (`NextLayer.without_each`)."""
    n_inputs = nxt.module.weight.shape[1] // nxt.span

    def stack(inputs, output, start, stop):
        if cumulative and start:  # the chunk starts from the output without nodes[:start]
            keep = torch.ones(n_inputs, dtype=torch.bool, device=inputs.device)
            keep[nodes[:start]] = False
            output = nxt.forward(inputs * nxt.input_mask(keep).to(inputs.dtype))
        return nxt.without_each(inputs, output, nodes[start:stop], cumulative).flatten(0, 1)

    return _stacked_passes(model, nxt.module, x, y, len(nodes), chunk, n_classes, accuracy, stack)
