"""Shared fixtures. Data sets come from the project's data root (filled from the mirror on
first use); everything a test writes goes to a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture()
def results_dir(tmp_path, monkeypatch) -> Path:
    """A private results root for one test."""
    path = tmp_path / "results"
    monkeypatch.setenv("NETSHRINK_RESULTS", str(path))
    return path
