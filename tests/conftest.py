"""Shared fixtures. Data sets come from the project's data root (filled from the mirror on
first use); everything a test writes goes to a temporary folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(
    params=[
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(not _cuda_available(), reason="no CUDA device on this machine"),
            ],
        ),
    ]
)
def device(request):
    """Every device a model can run on here: the CPU always, CUDA when present (`-m cuda`)."""
    import torch

    return torch.device(request.param)


@pytest.fixture()
def results_dir(tmp_path, monkeypatch) -> Path:
    """A private results root for one test."""
    path = tmp_path / "results"
    monkeypatch.setenv("NETSHRINK_RESULTS", str(path))
    monkeypatch.setenv("NETSHRINK_STAGED", "1")  # written in place, as under the runner
    return path


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Every chapter run by papermill in the smoke profile: (results root, executed notebooks)."""
    from netshrink.book import chapters, runner

    results = tmp_path_factory.mktemp("results")
    executed = {
        c.name: runner.run_chapter(c, "smoke", results=results, progress=False)
        for c in chapters.CHAPTERS.values()
    }
    return results, executed


def build_book_copy(root: Path, results: Path):
    """Build the book of the smoke run `results` in a copy of the project's book sources at
    `root`; return (html folder, the finished jupyter-book process)."""
    from netshrink.book import runner

    root.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml", "book", "chapters"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    proc = runner.build_book("smoke", root=root, results=results)
    return root / "_build" / "html", proc


@pytest.fixture(scope="session")
def smoke_book(smoke_run, tmp_path_factory):
    """The HTML book built from the smoke run: (html folder, jupyter-book process)."""
    results, _ = smoke_run
    return build_book_copy(tmp_path_factory.mktemp("book") / "project", results)


@pytest.fixture(scope="session")
def book_builder():
    """`build_book_copy`, for tests that build a book of their own."""
    return build_book_copy


def synthetic_batches(features: int = 20, n: int = 2, size: int = 40, classes: int = 10, seed: int = 0):
    """Batches of (x, y) whose class is readable from x (x[:, y] is raised by 3)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = torch.randint(0, classes, (size,), generator=g)
        x = torch.randn(size, features, generator=g)
        x[torch.arange(size), y] += 3.0
        out.append((x, y))
    return out


def trained_result(model, loader, *, key: str = "tiny", label: str = "tiny data"):
    """A `cache.TrainResult` for `model` as it is, its test metrics measured on `loader`."""
    import pandas as pd

    from netshrink import cache, train

    metrics = train.evaluate(model, loader)
    config = train.TrainConfig("mlp", "mnist", {}, {})
    history = pd.DataFrame({"epoch": [1], "test_acc": [metrics["acc"]], "seconds": [0.1]})
    return cache.TrainResult(model.eval(), history, metrics, key, True, config, metrics, label)


@pytest.fixture()
def data_root(tmp_path):
    """A private data root with MNIST copied in (no network, no mirror needed)."""
    from netshrink import data, paths

    data.load_raw("mnist")  # fills the project's data root from the mirror on first use
    root = tmp_path / "data"
    shutil.copytree(paths.data_root() / "MNIST", root / "MNIST")
    return root


SMALL_MNIST = {"val_size": 500, "train_size": 3000, "test_size": 1000}


def small_config(**kw):
    """A 64-node MLP on a small MNIST subset, Adam, 2 epochs: a configuration quick to train."""
    from netshrink.train import TrainConfig

    base = dict(model="mlp", dataset="mnist", model_kwargs={"hidden": [64]}, data_kwargs=SMALL_MNIST,
                optimizer="adam", lr=1e-3, epochs=2, batch_size=64, seed=0)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def random_batches(shape, n=2, size=30, classes=10, seed=0):
    """`n` batches of standard normal inputs of `shape` and random labels."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, *shape, generator=g), torch.randint(0, classes, (size,), generator=g))
        for _ in range(n)
    ]


def fake_mirror(tmp_path, corrupt=False):
    """A mirror folder holding MNIST's IDX files and a SHA256SUMS (one wrong digest if `corrupt`)."""
    from netshrink import paths, raw
    from netshrink.io import file_sha256

    mirror = tmp_path / "mirror"
    folder = mirror / "MNIST" / "raw"
    folder.mkdir(parents=True)
    src = paths.mirror_dir()
    lines = []
    for f in raw.IDX_FILES:
        shutil.copy(src / "MNIST" / "raw" / f"{f}.gz", folder / f"{f}.gz")
        digest = file_sha256(folder / f"{f}.gz")
        if corrupt and f.startswith("t10k-labels"):
            digest = "0" * 64
        lines.append(f"{digest}  MNIST/raw/{f}.gz")
    (mirror / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return mirror


def per_class_metrics(model, loader, n_classes=10):
    """Mean loss and accuracy per class, one plain forward pass per batch: the reference the
    batched per-class ablations are checked against."""
    import torch

    loss, hits, count = (
        torch.zeros(n_classes, dtype=torch.float64),
        torch.zeros(n_classes),
        torch.zeros(n_classes),
    )
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            loss.index_add_(0, y, torch.nn.functional.cross_entropy(logits, y, reduction="none").double())
            hits.index_add_(0, y, (logits.argmax(1) == y).float())
            count.index_add_(0, y, torch.ones(len(y)))
    return loss / count, hits.double() / count


def trained_mlps(hidden: int, epochs: int, n_batches: int = 2):
    """Two MLPs (seeds 0 and 1) with one hidden layer of `hidden`, trained on `synthetic_batches`:
    ([TrainResult, TrainResult], the batches)."""
    import torch

    from netshrink import models, train

    loader = synthetic_batches(n=n_batches)
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        mlp = models.MLP(in_features=20, hidden=(hidden,))
        train.fit(mlp, torch.optim.Adam(mlp.parameters(), lr=0.01), loader, epochs, progress=False)
        out.append(trained_result(mlp, loader, key=f"net{seed}"))
    return out, loader


def relative_error(a, b) -> float:
    """||a - b|| / ||b||."""
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(autouse=True)
def _no_model_listener_left():
    """A chapter run a test starts listens for models trained outside the cache; the next test
    starts with no one listening (its report folder is gone)."""
    yield
    from netshrink import progress

    progress.listen_for_models(None)


@pytest.fixture()
def tiny_mnist():
    """120 MNIST-shaped images whose label is one bright pixel (y, y): learnable in an epoch."""
    import torch

    from netshrink import data

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (120,), generator=g)
    images = torch.rand(120, 1, 28, 28, generator=g) * 0.1
    images[torch.arange(120), 0, labels, labels] = 1.0  # a learnable signal: the pixel (y, y)
    ds = data.ImageDataset(images, labels)
    return data.DataSplits("mnist", "tiny", tuple(map(str, range(10))), ds, ds, ds, {"n": 120})
