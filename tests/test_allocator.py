"""The allocator setting that keeps freed memory: large temporaries fault no pages once warm."""

import resource
import sys

import pytest
import torch

from netshrink import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux only")
def test_large_temporaries_fault_no_pages_once_memory_is_kept():
    assert allocator.keep_freed_memory() is True and allocator.keep_freed_memory() is True  # idempotent
    x = torch.randn(64, 32, 28, 28)  # 6.4 MB per temporary, above glibc's first mmap threshold
    for _ in range(3):  # warm: the heap grows once
        (x * 2).relu_().sum()
    blocks = []
    for _ in range(3):  # the quietest of three blocks: the machine may reclaim pages at any time
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(50):
            (x * 2).relu_().sum()
        blocks.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    # an unkept 6.4 MB temporary that is mapped afresh faults ~1,600 pages: 80,000 for 50
    assert min(blocks) < 2000, f"{blocks} page faults in blocks of 50 reused temporaries"
