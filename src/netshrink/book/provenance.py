"""Where a chapter's numbers come from: a provenance record per run, and the check that
committed results (`results/full/`, made on a GPU that CI does not have) still match the code.

`results/<profile>/<chapter>/provenance.json` holds the commit, whether the working tree had
changes, the device and precision, the PyTorch and Python versions, the wall time, the date,
the profile's parameters and a digest of the notebook's code cells.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import torch

from netshrink.book.chapters import RUNTIME, Chapter
from netshrink.book.report import read_manifest

RECORD = "provenance.json"


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def notebook_digest(path: Path) -> str:
    """16 hex digits of the SHA-256 of the notebook's code cells (outputs, metadata and the
    parameters cell's values left out): a change of what the chapter computes changes it."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells
            if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]  # fmt: skip
    return hashlib.sha256("\n\x00\n".join(code).encode()).hexdigest()[:16]


def record(chapter: Chapter, profile: str, params: dict[str, Any], wall_seconds: float, root: Path) -> dict:
    """The provenance of a run of `chapter` that just finished, with `params` as it ran."""
    status = _git(root, "status", "--porcelain", "--", "src", "chapters")
    return {
        "chapter": chapter.name,
        "profile": profile,
        "commit": _git(root, "rev-parse", "HEAD") or "unknown",
        "uncommitted changes": bool(status) if status is not None else None,
        "computed on": params.get("computed on"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "wall seconds": round(wall_seconds, 1),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "notebook": chapter.notebook,
        "notebook digest": notebook_digest(root / chapter.notebook),
        "parameters": {k: v for k, v in params.items() if k != "computed on"},
    }


def read(results: Path, profile: str, chapter: str) -> dict | None:
    path = results / profile / chapter / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def stale(chapter: Chapter, profile: str, results: Path, root: Path) -> list[str]:
    """Why the results of `chapter` under `results/<profile>` no longer match the code: other
    parameters than the profile's, another item list, or a changed notebook. Empty when they match."""
    prov = read(results, profile, chapter.name)
    if prov is None:
        return [f"no {RECORD}"]
    reasons = []
    asked = {k: v for k, v in chapter.parameters(profile).items() if k not in RUNTIME}
    ran = {k: v for k, v in prov["parameters"].items() if k not in RUNTIME}
    differs = sorted(k for k in asked.keys() | ran.keys() if asked.get(k) != ran.get(k))
    if differs:
        reasons.append(
            "parameters differ: "
            + ", ".join(f"{k} ran {ran.get(k)!r}, now {asked.get(k)!r}" for k in differs)
        )
    items = read_manifest(profile, results)["items"]
    made = sorted(k for k, v in items.items() if v.get("chapter") == chapter.name)
    if made != sorted(chapter.items):
        reasons.append(f"items differ: made {made}, the chapter now lists {sorted(chapter.items)}")
    if prov["notebook digest"] != notebook_digest(root / chapter.notebook):
        reasons.append(f"{chapter.notebook} changed since the run")
    return reasons


def page_note(prov: dict) -> str:
    """A note for the top of a chapter page: which profile, device and commit made its numbers."""
    commit = prov["commit"][:10] + (" with uncommitted changes" if prov.get("uncommitted changes") else "")
    minutes = prov["wall seconds"] / 60
    return (
        f"```{{note}}\nThe numbers on this page were made by the **`{prov['profile']}`** profile on "
        f"{prov['computed on'] or 'an unrecorded device'}, at commit `{commit}`, on {prov['date'][:10]} "
        f"(PyTorch {prov['torch']}; {minutes:.1f} minutes).\n```"
    )
