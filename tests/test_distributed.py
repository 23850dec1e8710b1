"""Data-parallel training on the CPU: two gloo processes (spawned here, loopback only) train the
same small conv net as one process stepping through the same global batches; a process killed
mid-run makes the other stop with a clear error, leaving only whole, verified files."""

import datetime as dt
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from netshrink import cache, distributed, train


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def _batches(n=6, size=32):
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(size, 1, 8, 8, generator=g), torch.randint(0, 10, (size,), generator=g))
        for _ in range(n)
    ]


def _fit(model, epochs, on_epoch_end=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return train.fit(model, optimizer, _batches(), epochs, progress=False, on_epoch_end=on_epoch_end)


def _worker(rank, world_size, port, out, kill):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=dt.timedelta(seconds=30))
    out = Path(out)
    model = _net()

    def on_epoch_end(epoch, history):
        if rank == 0:  # what the cache does: a verified checkpoint, written by rank 0 alone
            cache.save_verified(
                out / "checkpoint.pt", {"epoch": epoch, "state": model.state_dict()}, {"k": 1}
            )
        if kill and rank == 1 and epoch == 1:
            os._exit(3)  # killed between two epochs

    try:
        history = _fit(model, 3, on_epoch_end)
        if rank == 0:
            torch.save({"state": model.state_dict(), "history": history}, out / "ddp.pt")
    except distributed.PeerStopped as err:
        (out / f"error-{rank}.txt").write_text(str(err))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_the_same_weights_as_one(tmp_path):
    torch.set_num_threads(1)
    one = _net()
    history = _fit(one, 3)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), False), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt")
    for name, value in one.state_dict().items():
        assert torch.allclose(ddp["state"][name], value, atol=1e-5), name
    for a, b in zip(history, ddp["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_acc"] == b["train_acc"]


def test_a_killed_process_stops_the_other_with_a_clear_error_and_whole_files(tmp_path):
    context, port = mp.get_context("spawn"), _free_port()
    processes = [
        context.Process(target=_worker, args=(rank, 2, port, str(tmp_path), True)) for rank in (0, 1)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 3], "rank 1 was killed; rank 0 stopped on its own"
    text = (tmp_path / "error-0.txt").read_text()
    assert (
        "rank 0 of 2: the data-parallel run lost a process in epoch 2" in text
        and "run again to resume" in text
    )
    saved = cache.load_verified(tmp_path / "checkpoint.pt", {"k": 1}, torch.device("cpu"))
    assert saved["epoch"] == 1, "the finished epoch's checkpoint is whole and verified"
    assert not (tmp_path / "ddp.pt").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name], "no half-written file"


@pytest.mark.parametrize(
    ("world_size", "message"),
    [
        (64, r"--nproc-per-node=64 is larger than the global batch \(32\); allowed: 1..32 processes"),
        (3, r"world size 3 does not divide the global batch \(32\); allowed: 1, 2, 4, 8, 16, 32 processes"),
    ],
)
def test_a_world_size_that_cannot_split_the_batch_is_refused(world_size, message):
    with pytest.raises(ValueError, match=message):
        distributed.check_batch(32, world_size)
    distributed.check_batch(32, 4)


def test_outside_torchrun_a_process_is_rank_zero_of_one():
    assert distributed.world() == (0, 1) and distributed.is_main()
    assert distributed.init_from_env(torch.device("cpu")) is False
    x, y = torch.arange(10).view(5, 2), torch.arange(5)
    assert distributed.share(x, y, 1, 2)[1].tolist() == [3, 4]


def _script(*args, torchrun=False):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    launcher = (
        [str(Path(sys.executable).parent / "torchrun"), "--nproc-per-node", "2"]
        if torchrun
        else [sys.executable]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [*launcher, str(root / "tools" / "train_vgg.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)


def test_the_vgg_training_script_trains_the_chapters_model_and_refuses_what_it_cannot_do():
    proc = _script("--profile", "smoke", "-p", "device", "cpu", torchrun=True)
    assert proc.returncode != 0
    assert "2 processes on the CPU cannot synchronise the batch norm of features.1" in proc.stderr
    proc = _script("--profile", "smoke", "-p", "epochs", "-1")
    assert proc.returncode == 2 and "epochs=-1 is out of range" in proc.stderr
    proc = _script("--profile", "smoke", "-p", "device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "VGG-16 at 0.0625 of its width: test accuracy" in proc.stdout
    again = _script("--profile", "smoke", "-p", "device", "cpu")
    assert "from the cache" in again.stdout, "the chapter's cache key, whatever trained it"
