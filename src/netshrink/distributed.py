"""Data-parallel training with PyTorch's own engine: `torch.distributed` and
`DistributedDataParallel`, launched by `torchrun --nproc-per-node N` (gloo on the CPU, NCCL on
CUDA). Nothing here schedules processes: torchrun does.

Every rank draws the same global batch (same seed, same shuffle, same augmentation) and trains
on its own contiguous share of it; DDP averages the gradients. The loss of a share is its sum
over the global batch size times the world size, so the averaged gradient is the one of the
whole global batch: N processes train the same model as one process stepping through the
same global batches (within float tolerance; batch-norm statistics stay per process on the CPU,
where `SyncBatchNorm` does not run, and dropout draws differ). Rank 0 alone writes files.
"""

from __future__ import annotations

import datetime as dt
import os

import torch
import torch.distributed as dist
from torch import nn

from netshrink.devices import model_device

TIMEOUT = dt.timedelta(seconds=120)  # a peer that stops answering ends the run within this


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes files (rank 0, or no distributed run)."""
    return world()[0] == 0


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes (`WORLD_SIZE`, `RANK`, `MASTER_ADDR`, ...):
    NCCL on CUDA, gloo on the CPU. False (and nothing done) outside torchrun or with one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return dist.is_available() and dist.is_initialized()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=TIMEOUT)
    return True


def check_batch(batch_size: int, world_size: int) -> None:
    """The global batch must split evenly over the processes; a ValueError otherwise."""
    if world_size > batch_size:
        raise ValueError(
            f"--nproc-per-node={world_size} is larger than the global batch ({batch_size}); "
            f"allowed: 1..{batch_size} processes"
        )
    if batch_size % world_size:
        divisors = [d for d in range(1, min(batch_size, 64) + 1) if batch_size % d == 0]
        raise ValueError(
            f"world size {world_size} does not divide the global batch ({batch_size}); allowed: "
            f"{', '.join(map(str, divisors))} processes"
        )


def check_model(model: nn.Module, world_size: int) -> None:
    """On the CPU a model with batch norm cannot be trained data-parallel to the same result as
    one process (`SyncBatchNorm` needs CUDA): a ValueError saying so, rather than another model
    under the same cache key."""
    device = model_device(model)
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if world_size > 1 and device.type == "cpu" and norms:
        raise ValueError(
            f"{world_size} processes on the CPU cannot synchronise the batch norm of {norms[0]} (and "
            f"{len(norms) - 1} more): SyncBatchNorm needs CUDA; allowed: one process on the CPU, or CUDA"
        )


def share(x: torch.Tensor, y: torch.Tensor, rank: int, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous share of a global batch (shares differ by at most one row)."""
    return torch.tensor_split(x, world_size)[rank], torch.tensor_split(y, world_size)[rank]


def wrap(model: nn.Module) -> nn.Module:
    """`model` in DistributedDataParallel (on its device); batch norm synchronised on CUDA."""
    device = model_device(model)
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index or 0])
    return nn.parallel.DistributedDataParallel(model)


def all_sum(*values: torch.Tensor) -> list[torch.Tensor]:
    """The sums of `values` over every process (each a tensor on this process's device)."""
    out = []
    for value in values:
        value = value.clone()
        dist.all_reduce(value)
        out.append(value)
    return out


class PeerStopped(RuntimeError):
    """Another process of the data-parallel run stopped; this one stops too."""
