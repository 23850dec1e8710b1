"""Mean loss and accuracy: the one evaluation loop of the package, and the one log-sum-exp of
the batched evaluators (`compress.masking`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from netshrink.checks import check_examples, check_labels, check_model
from netshrink.devices import mode, to_device


def class_sums(
    logits: torch.Tensor, y: torch.Tensor, n_classes: int, accuracy: bool = True, class_dim: int = 2
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-class summed cross-entropy (t, C) float64 and correct predictions (t, C) long (None
    unless `accuracy`), from the logits (t, N, C) of t variants of a model on the same N examples
    with labels y (N,). A prediction is correct when the target's logit is the largest.

    `class_dim=1` takes the logits as planes (t, C, N), each class's logits of the N examples
    contiguous: every step then runs along long rows instead of reducing rows of C values
    (measured 1.5-1.7x faster than contiguous (t, N, C) logits at C = 10)."""
    shape = [len(logits), -1, -1]
    shape[class_dim] = 1
    target = logits.gather(class_dim, y.unsqueeze(0).unsqueeze(class_dim).expand(shape))
    target = target.squeeze(class_dim)  # (t, N)
    top = logits.amax(class_dim)
    losses = top + (logits - top.unsqueeze(class_dim)).exp_().sum(class_dim).log_() - target  # (t, N)
    loss_sum = torch.zeros(len(logits), n_classes, dtype=torch.float64, device=y.device)
    loss_sum.index_add_(1, y, losses.double())
    if not accuracy:
        return loss_sum, None
    correct = torch.zeros(len(logits), n_classes, dtype=torch.long, device=y.device)
    return loss_sum, correct.index_add_(1, y, (target >= top).long())


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable) -> dict[str, float]:
    """Mean cross-entropy `loss` and accuracy `acc` of `model` over `loader`, on the model's
    device (batches follow the model), in eval mode. An empty loader is an error."""
    device = check_model(model)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    with mode(model, training=False):
        for x, y in loader:
            x, y = to_device((x, y), device)
            logits = model(x)
            check_labels(y, logits.shape[1])
            total_loss += nn.functional.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
    check_examples(n, "evaluate")
    return {"loss": total_loss.item() / n, "acc": correct.item() / n}
