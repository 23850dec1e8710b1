"""Batch norm folded into the conv before it, as an inference deployment does: in eval mode a
BatchNorm2d is a per-channel scale and shift, which the conv's weights and bias absorb exactly.

Works on `nn.Sequential` stacks (VGG's `features`), where a batch norm follows a conv or a
decomposed conv (an `nn.Sequential` of smaller convs, whose last conv absorbs it). torch's
`fuse_conv_bn_eval` does the arithmetic; torch.fx's `optimization.fuse` would find the pairs,
but cannot trace the decomposed layers' `PointwiseConv`, so the pairs are found here by hand.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = [
    "fold_batch_norm",
]


def _last_conv(module: nn.Module) -> tuple[nn.Sequential | None, nn.Conv2d | None]:
    """(container, conv): the conv that ends `module` (container None: `module` is that conv)."""
    if isinstance(module, nn.Conv2d):
        return None, module
    if isinstance(module, nn.Sequential) and len(module) and isinstance(module[-1], nn.Conv2d):
        return module, module[-1]
    return None, None


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` in which every BatchNorm2d that directly follows a conv (or a
    decomposed conv) inside an `nn.Sequential` is folded into that conv and replaced by
    `nn.Identity`; the outputs agree with `model.eval()`'s to rounding. `model` is left as it was.
    Batch norms after anything else stay."""
    folded = copy.deepcopy(model).eval()
    for parent in folded.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        children = list(parent.named_children())
        for (name, module), (norm_name, norm) in zip(children, children[1:], strict=False):
            container, conv = _last_conv(module)
            if conv is None or not isinstance(norm, nn.BatchNorm2d) or norm.running_mean is None:
                continue
            fused = fuse_conv_bn_eval(conv, norm)
            if container is None:
                setattr(parent, name, fused)
            else:
                container[-1] = fused
            setattr(parent, norm_name, nn.Identity())
    return folded
