"""Where a chapter's numbers come from: a provenance record per run, and the check that
committed results (`results/full/`, made on a GPU that CI does not have) still match the code.

`results/<profile>/<chapter>/provenance.json` holds the commit, whether the working tree had
changes, the device and precision, the CPU (model, vector unit, threads), the PyTorch and Python
versions, the wall time, the CPU seconds (user and system) and page faults of the chapter's kernel,
the date, the profile's parameters and a digest of the notebook's code cells.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import torch

from netshrink.book import escape
from netshrink.book.chapter import RUNTIME, Chapter
from netshrink.book.report import read_manifest
from netshrink.io import file_sha256, write_json

RECORD = "provenance.json"
FILES = "files"  # {path in the chapter folder: SHA-256 of its bytes}, every result file of the run
# field: the JSON types it may hold (a record without one is refused, naming the file and field)
FIELDS: dict[str, tuple[type, ...]] = {
    "chapter": (str,), "profile": (str,), "commit": (str,), "date": (str,), "torch": (str,),
    "wall seconds": (int, float), "notebook digest": (str,), "parameters": (dict,),
}  # fmt: skip


class BadRecord(ValueError):
    """A provenance record that is not JSON, lacks a field or holds one of the wrong type."""


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


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_record(threads: int | None = None) -> dict[str, Any]:
    """The CPU a run used: model, the vector unit PyTorch's kernels dispatch to (`AVX2`,
    `AVX512`, ...), cores and the threads PyTorch computes with."""
    return {
        "model": cpu_model(),
        "vector unit": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
    }


@dataclass(frozen=True)
class Usage:
    """CPU seconds and page faults of finished child processes (a chapter's kernel), from
    `getrusage(RUSAGE_CHILDREN)`; subtract two readings to get a run's own."""

    user: float
    system: float
    minor_faults: int
    major_faults: int

    @classmethod
    def children(cls) -> Usage:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(r.ru_utime, r.ru_stime, r.ru_minflt, r.ru_majflt)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.user - other.user,
            self.system - other.system,
            self.minor_faults - other.minor_faults,
            self.major_faults - other.major_faults,
        )

    def as_record(self) -> dict[str, Any]:
        total = self.user + self.system
        return {
            "user seconds": round(self.user, 1),
            "system seconds": round(self.system, 1),
            "system share": round(self.system / total, 4) if total > 0 else None,
            "minor page faults": self.minor_faults,
            "major page faults": self.major_faults,
        }

    def summary(self) -> str:
        """'CPU 812 s user + 31 s system (3.7 % system), 1.2 M minor page faults'."""
        total = self.user + self.system
        share = 100 * self.system / total if total > 0 else 0.0
        return (f"CPU {self.user:.0f} s user + {self.system:.0f} s system ({share:.1f} % system), "
                f"{self.minor_faults / 1e6:.2f} M minor page faults")  # fmt: skip


def code_state(chapter: Chapter, root: Path) -> dict[str, Any]:
    """The code a run starts from: the commit, whether `src` or `chapters` had uncommitted
    changes, and the notebook's digest. Taken when the run starts: a commit made while a long
    run goes on is not the code it ran."""
    status = _git(root, "status", "--porcelain", "--", "src", "chapters")
    return {
        "commit": _git(root, "rev-parse", "HEAD") or "unknown",
        "uncommitted changes": bool(status) if status is not None else None,
        "notebook digest": notebook_digest(root / chapter.notebook),
    }


def record(
    chapter: Chapter,
    profile: str,
    params: dict[str, Any],
    wall_seconds: float,
    root: Path,
    usage: Usage | None = None,
    state: dict[str, Any] | None = None,
    models: list[dict[str, Any]] | None = None,
) -> dict:
    """The provenance of a run of `chapter` that just finished, with `params` as it ran,
    `usage`, the CPU time of its kernel, `state`, the `code_state` it started from (now, when
    not given), and `models`, the models it trained or loaded (`ChapterRun.models`)."""
    state = state or code_state(chapter, root)
    return {
        "chapter": chapter.name,
        "profile": profile,
        "commit": state["commit"],
        "uncommitted changes": state["uncommitted changes"],
        "computed on": params.get("computed on"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "wall seconds": round(wall_seconds, 1),
        "cpu": cpu_record(params.get("threads")),
        "cpu usage": usage.as_record() if usage is not None else None,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "notebook": chapter.notebook,
        "notebook digest": state["notebook digest"],
        "parameters": {k: v for k, v in params.items() if k not in ("computed on", "threads")},
        "models": models,
    }


def cached_models(prov: dict) -> tuple[int, int, float]:
    """(models the run used, how many came from the cache of an earlier run, the seconds their
    training took then), each model counted once; (0, 0, 0.0) when the record does not say."""
    first: dict[str, dict] = {}
    for entry in prov.get("models") or []:
        first.setdefault(entry["key"], entry)  # a model trained and then reloaded was trained here
    cached = [e for e in first.values() if e["from cache"]]
    return len(first), len(cached), sum(e["training seconds"] for e in cached)


def check_record(prov: Any, path: Path) -> dict:
    """`prov` when it is a record with every field of `FIELDS` (and `files`, when there, a
    mapping of paths to SHA-256 digests); else a `BadRecord` naming `path` and the field."""
    if not isinstance(prov, dict):
        raise BadRecord(f"{path} holds a JSON {type(prov).__name__}; allowed: a provenance record (object)")
    for field, kinds in FIELDS.items():
        if field not in prov:
            raise BadRecord(f"{path} lacks the field {field!r}; rerun the chapter or restore the file")
        if isinstance(prov[field], bool) or not isinstance(prov[field], kinds):
            raise BadRecord(f"{path}: field {field!r} holds {type(prov[field]).__name__}; allowed: "
                            f"{' or '.join(k.__name__ for k in kinds)}")  # fmt: skip
    files = prov.get(FILES)
    if files is not None and not (
        isinstance(files, dict)
        and all(isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in files.items())
    ):
        raise BadRecord(f"{path}: field {FILES!r} must map file names to SHA-256 digests (64 hex digits)")
    return prov


def read(results: Path, profile: str, chapter: str, strict: bool = True) -> dict | None:
    """The chapter's record (checked by `check_record`), None when there is none; a record that is
    not JSON or lacks a field raises `BadRecord` naming the file, or gives None unless `strict`."""
    path = results / profile / chapter / RECORD
    if not path.is_file():
        return None
    try:
        try:
            prov = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise BadRecord(f"{path} is not valid JSON ({err})") from None
        return check_record(prov, path)
    except BadRecord:
        if strict:
            raise
        return None


def file_digests(folder: Path) -> dict[str, str]:
    """{path relative to `folder`: SHA-256} of every file under the chapter folder `folder`
    but its provenance record and hidden ones (temporaries, which git ignores)."""
    return {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and path.name != RECORD
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)  # temporaries, locks
    }


def file_reasons(prov: dict, folder: Path) -> list[str]:
    """Why the files in the chapter folder `folder` are not those the run wrote (`prov[FILES]`):
    each changed, missing or unrecorded file, named. Empty when they all match."""
    if FILES not in prov:
        return [f"{folder / RECORD} records no digests of the result files"]
    recorded, now = prov[FILES], file_digests(folder)
    reasons = [f"{folder / name} is missing" for name in sorted(recorded.keys() - now.keys())]
    reasons += [f"{folder / name} changed since the run (its SHA-256 differs from the record)"
                for name in sorted(recorded.keys() & now.keys()) if recorded[name] != now[name]]  # fmt: skip
    added = sorted(now.keys() - recorded.keys())
    reasons += [f"{folder / name} is not in the run's record" for name in added]
    return reasons


def add_file_digests(results: Path, profile: str) -> list[str]:
    """One-time migration: add the `files` digests to the records of `profile` that lack them
    (the committed full results predate them), from the files as they are. Returns the chapters
    whose record it changed."""
    changed = []
    for path in sorted((results / profile).glob(f"*/{RECORD}")):
        prov = json.loads(path.read_text())
        if FILES not in prov:
            write_json(path, {**prov, FILES: file_digests(path.parent)})
            changed.append(path.parent.name)
    return changed


def stale(chapter: Chapter, profile: str, results: Path, root: Path) -> list[str]:
    """Why the results of `chapter` under `results/<profile>` no longer match the code or the
    record: a malformed record, changed/missing/unrecorded files, other parameters than the
    profile's, another item list, or a changed notebook. Empty when they match."""
    try:
        prov = read(results, profile, chapter.name)
    except BadRecord as err:
        return [str(err)]
    if prov is None:
        return [f"no {RECORD}"]
    reasons = file_reasons(prov, results / profile / chapter.name)
    asked = {k: v for k, v in chapter.parameters(profile).items() if k not in RUNTIME}
    ran = {k: v for k, v in prov["parameters"].items() if k not in RUNTIME}
    differs = sorted(k for k in asked.keys() | ran.keys() if asked.get(k) != ran.get(k))
    if differs:
        reasons.append(
            "parameters differ: "
            + ", ".join(f"{k} ran {ran.get(k)!r}, now {asked.get(k)!r}" for k in differs)
        )
    items = read_manifest(profile, results)["items"]
    made = {k for k, v in items.items() if v.get("chapter") == chapter.name}
    missing = sorted(set(chapter.items) - made)  # items beyond the list (R-S1, benchmarks) may come and go
    if missing:
        reasons.append(f"items differ: the chapter now lists {missing}, which the run did not make")
    if prov["notebook digest"] != notebook_digest(root / chapter.notebook):
        reasons.append(f"{chapter.notebook} changed since the run")
    return reasons


def device_text(prov: dict) -> str | None:
    """'CPU (2 threads), float32 (AMD EPYC, AVX2)': where a run computed, with the CPU's model
    and vector unit when it ran on the CPU; None when the record does not say."""
    device, cpu = prov.get("computed on"), prov.get("cpu")
    if device and cpu and device.startswith("CPU"):
        device += f" ({cpu['model']}, {cpu['vector unit']})"
    return device


def page_note(prov: dict) -> str:
    """A note for the top of a chapter page: which profile, device and commit made its numbers."""
    commit = prov["commit"][:10] + (" with uncommitted changes" if prov.get("uncommitted changes") else "")
    minutes = f"{prov['wall seconds'] / 60:.1f} minutes"
    used, cached, seconds = cached_models(prov)
    if cached:
        minutes += (
            f", with {cached} of its {used} trained models from the cache of an earlier run of the "
            f"same configuration, whose training took {seconds / 60:.1f} minutes more"
        )
    device = escape.text(device_text(prov) or "an unrecorded device")  # the record's strings: escaped
    return (
        f"```{{note}}\nThe numbers on this page were made by the **{escape.code(prov['profile'])}** profile "
        f"on {device}, at commit {escape.code(commit)}, on {escape.text(prov['date'][:10])} "
        f"(PyTorch {escape.text(prov['torch'])}; {minutes}).\n```"
    )
