"""Removing one node through the next layer's linearity: the exact single-node ablation of a
conv layer without running the next layer once per node.

When the only things between a layer L and the next weighted layer (a Conv2d, or a Linear after
a flatten) act channel by channel and keep zeros (ReLU, max-pooling, flatten), zeroing channel j
of L zeroes channel j of the next layer's input. The next layer is linear, so its output without
channel j is its intact output minus the contribution of that one input channel: a conv with one
input channel (1/C of the next layer's cost) instead of the whole network before it and the next
layer itself. Only the layers after the next one still run once per removed node.

`find_next_layer` checks the condition on the model itself (a probe pass on a random mask): a
batch norm, a residual add or any other use of L's output makes it None, and the caller falls
back to the general hooked pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from netshrink.checks import node_count

__all__ = [
    "NextLayer",
    "find_next_layer",
]


@dataclass(frozen=True)
class NextLayer:
    """The weighted layer fed by a layer's nodes: node j is inputs j*span..(j+1)*span - 1 of a
    Linear (span = H*W after a flatten), or input channel j of a Conv2d (span 1)."""

    module: nn.Conv2d | nn.Linear
    span: int

    def input_mask(self, keep: torch.Tensor) -> torch.Tensor:
        """The keep-mask (n_nodes,) as a factor on this layer's input, broadcastable to (N, ...)."""
        if isinstance(self.module, nn.Conv2d):
            return keep.view(1, -1, 1, 1)
        return keep.repeat_interleave(self.span).view(1, -1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The layer on `inputs`, without its hooks."""
        return self.module.forward(inputs)

    def without_each(
        self, inputs: torch.Tensor, output: torch.Tensor, nodes: torch.Tensor, cumulative: bool = False
    ) -> torch.Tensor:
        """This layer's output without each of `nodes` alone, (t, N, *out): the intact `output`
        (N, *out) minus what input node j contributes (from `inputs` (N, *in)), by linearity.
        `cumulative`: row j without nodes[0..j] together (the contributions summed). Without
        autograd (the result is written over the contributions)."""
        w, t = self.module.weight, len(nodes)
        if isinstance(self.module, nn.Conv2d):  # the conv of one input channel, as im2col columns
            conv = self.module
            cols = F.unfold(inputs[:, nodes], w.shape[2:], conv.dilation, conv.padding, conv.stride)
            cols = cols.view(len(inputs), t, -1, cols.shape[-1]).transpose(0, 1)  # (t, N, kh*kw, L)
            # (out, kh*kw) @ (kh*kw, L) per node and image, written once in the (t, N, out, L) order
            # the later layers take (an einsum wrote it node-major, then copied it)
            kernels = w[:, nodes].transpose(0, 1).flatten(2).unsqueeze(1)  # (t, 1, out, kh*kw)
            parts = torch.matmul(kernels, cols).view(t, *output.shape)
        else:  # node j is inputs j*span..(j+1)*span - 1
            n = w.shape[1] // self.span
            parts = torch.einsum(
                "nts,ots->tno",
                inputs.view(len(inputs), n, self.span)[:, nodes],
                w.view(w.shape[0], n, self.span)[:, nodes],
            )
        if cumulative:
            parts.cumsum_(0)
        return torch.sub(output, parts, out=parts)  # in place: one (t, N, *out) tensor


def _calls(model: nn.Module, sample: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
    """The leaf modules (and their inputs) in the order one forward pass calls them."""
    calls: list[tuple[nn.Module, torch.Tensor]] = []
    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_pre_hook(lambda mod, args: calls.append((mod, args[0]))) for m in leaves]
    try:
        model(sample)
    finally:
        for h in handles:
            h.remove()
    return calls


def _logits_and_input(model, module, nxt, sample, keep, at_next: bool):
    """Logits and the next layer's input with `keep` applied to `module`'s output, or (at_next)
    to the next layer's input instead."""
    seen: list[torch.Tensor] = []
    factor = nxt.input_mask(keep).to(sample.dtype)

    def scale_output(_mod, _args, output):
        return output * keep.to(output.dtype).view(1, -1, *([1] * (output.dim() - 2)))

    def scale_input(_mod, args):
        seen.append(args[0] * factor if at_next else args[0])
        return (seen[-1], *args[1:])

    handles = [nxt.module.register_forward_pre_hook(scale_input)]
    if not at_next:
        handles.append(module.register_forward_hook(scale_output))
    try:
        return model(sample), seen[0]
    finally:
        for h in handles:
            h.remove()


def find_next_layer(model: nn.Module, layer: str, sample: torch.Tensor) -> NextLayer | None:
    """The next weighted layer of `layer` when removing nodes of `layer` equals zeroing that
    layer's inputs and nothing else (checked on `sample`, a few input rows, with every node
    removed and with two complementary random halves), else None."""
    module = model.get_submodule(layer)
    calls = _calls(model, sample)
    order = [m for m, _ in calls]
    if order.count(module) != 1:
        return None
    after = [(m, x) for m, x in calls[order.index(module) + 1 :] if isinstance(m, nn.Conv2d | nn.Linear)]
    if not after or order.count(after[0][0]) != 1:
        return None
    nxt_module, nxt_input = after[0]
    n = node_count(module)
    if isinstance(nxt_module, nn.Conv2d):
        if (
            nxt_module.groups != 1  # a grouped conv mixes only its group's channels: not handled
            or nxt_module.in_channels != n
            or nxt_module.padding_mode != "zeros"  # the columns (`F.unfold`) pad with zeros
            or isinstance(nxt_module.padding, str)
            or nxt_input.dim() != 4
        ):
            return None
        nxt = NextLayer(nxt_module, 1)
    elif nxt_input.dim() == 2 and nxt_module.in_features % n == 0:
        nxt = NextLayer(nxt_module, nxt_module.in_features // n)
    else:
        return None
    half = torch.ones(n, dtype=torch.bool)
    half[torch.randperm(n, generator=torch.Generator().manual_seed(0))[: (n + 1) // 2]] = False
    # every node removed (zeros stay zeros), then a random half and the other half (no mixing)
    for keep in (torch.zeros(n, dtype=torch.bool), half, ~half):
        keep = keep.to(sample.device)
        masked, masked_input = _logits_and_input(model, module, nxt, sample, keep, at_next=False)
        at_next, zeroed_input = _logits_and_input(model, module, nxt, sample, keep, at_next=True)
        if not (
            torch.allclose(masked_input, zeroed_input, rtol=1e-5, atol=1e-6)
            and torch.allclose(masked, at_next, rtol=1e-4, atol=1e-5)
        ):
            return None
    return nxt
