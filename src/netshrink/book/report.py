"""Show a chapter's tables and figures, write them to disk, and record them in the manifest.

Layout of a run (`results/` or `$NETSHRINK_RESULTS`):

    results/<profile>/manifest.json              item ID -> files, caption, parameters
    results/<profile>/<chapter>/parameters.json  the parameters the chapter ran with
    results/<profile>/<chapter>/<ID>[-name].csv  every table
    results/<profile>/<chapter>/<ID>[-name].png/.svg  every figure
    results/<profile>/<chapter>/glue.json        every number the prose quotes

Every file is written atomically; the manifest is updated under a file lock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import HTML, Image, Markdown, display
from myst_nb import glue

from netshrink import paths
from netshrink.book import tables
from netshrink.findings import Findings, compression_rows  # noqa: F401 - the report's inputs
from netshrink.io import atomic_path, write_json, write_text

PROFILES = ("smoke", "quick", "full")
ITEM_ID = re.compile(r"^[A-Z]-[A-Z]+\d+$")


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not known; allowed values: {', '.join(PROFILES)}")
    return profile


def _display_caption(item: str, caption: str) -> None:
    display(Markdown(f"**{item}.** {caption}"))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_manifest(profile: str, root: Path | None = None) -> dict[str, Any]:
    """The manifest of `profile`: {"profile", "items": {ID: {...}}}; empty when none yet."""
    path = (root or paths.results_root()) / profile / "manifest.json"
    if not path.is_file():
        return {"profile": profile, "items": {}}
    return json.loads(path.read_text())


def _journal(root: Path, profile: str, chapter: str) -> Path:
    return root / profile / f".{chapter}.publish.json"


def publish(chapter: str, profile: str, staging: Path, root: Path | None = None) -> None:
    """Replace chapter `chapter`'s results in `root` (default: the results root) by those a run
    wrote under the results root `staging`, as a whole, under the manifest's lock.

    A journal makes the swap survive a crash between any two steps: it records the old folder's
    parking name and the new manifest before the first rename, and the next `publish` or
    `recover` completes the swap (new folder in place: manifest written) or rolls it back (old
    folder back in place); the old folder is deleted only after the new manifest is written.
    A manifest that cannot be written rolls the swap back and raises, naming it."""
    root = Path(root) if root is not None else paths.results_root()
    new_dir, target = staging / profile / chapter, root / profile / chapter
    if not new_dir.is_dir():
        raise FileNotFoundError(f"the run of chapter {chapter!r} wrote no results under {staging / profile}")
    made = read_manifest(profile, staging)
    manifest_path = root / profile / "manifest.json"
    with _locked(manifest_path):
        _recover_locked(root, profile, chapter)
        manifest = read_manifest(profile, root)
        manifest["items"] = {
            **{k: v for k, v in manifest["items"].items() if v.get("chapter") != chapter},
            **{k: v for k, v in made["items"].items() if v.get("chapter") == chapter},
        }
        for key in ("comparisons", "compression"):
            manifest.setdefault(key, {}).pop(chapter, None)
            if chapter in made.get(key, {}):
                manifest[key][chapter] = made[key][chapter]
        old = target.with_name(f".{chapter}.previous")
        shutil.rmtree(old, ignore_errors=True)  # no journal names it: left by a finished swap
        journal = _journal(root, profile, chapter)
        write_json(journal, {"chapter": chapter, "old": old.name if target.exists() else None,
                             "manifest": manifest})  # fmt: skip
        if target.exists():
            target.rename(old)
        new_dir.rename(target)
        try:
            write_json(manifest_path, manifest)
        except OSError as err:
            target.rename(new_dir)  # roll back: the last good results stay whole
            if old.exists():
                old.rename(target)
            journal.unlink(missing_ok=True)
            raise OSError(f"could not write {manifest_path} ({err}); chapter {chapter!r} keeps its last "
                          f"results") from err  # fmt: skip
        journal.unlink()
        shutil.rmtree(old, ignore_errors=True)


def withdraw(chapter: str, profile: str, root: Path) -> None:
    """Remove chapter `chapter`'s folder and manifest entries from `root` (the roll-back of a
    publish that had no previous results), under the manifest's lock. The manifest goes first
    (one atomic write): a crash after it leaves at most a folder no manifest entry names, never
    an entry whose folder is gone."""
    manifest_path = root / profile / "manifest.json"
    with _locked(manifest_path):
        manifest = read_manifest(profile, root)
        manifest["items"] = {k: v for k, v in manifest["items"].items() if v.get("chapter") != chapter}
        for key in ("comparisons", "compression"):
            manifest.setdefault(key, {}).pop(chapter, None)
        write_json(manifest_path, manifest)
        target = root / profile / chapter
        old = target.with_name(f".{chapter}.previous")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        shutil.rmtree(old, ignore_errors=True)


def recover(root: Path, profile: str) -> list[str]:
    """Finish or roll back every swap of `profile` that a crashed `publish` left (its journal):
    a chapter whose new folder is in place gets the journal's manifest, one whose folder is
    missing gets its old folder back. Returns the chapters recovered."""
    done = []
    folder = Path(root) / profile
    for journal in sorted(folder.glob(".*.publish.json")) if folder.is_dir() else []:
        chapter = journal.name[1 : -len(".publish.json")]
        with _locked(folder / "manifest.json"):
            if _recover_locked(Path(root), profile, chapter):
                done.append(chapter)
    return done


def _recover_locked(root: Path, profile: str, chapter: str) -> bool:
    journal = _journal(root, profile, chapter)
    try:
        record = json.loads(journal.read_text())
    except (OSError, ValueError):
        journal.unlink(missing_ok=True)  # unreadable: written atomically, so never half a journal
        return False
    target = root / profile / chapter
    old = target.with_name(record["old"]) if record.get("old") else None
    if target.exists():  # the new folder is in place: complete the swap
        write_json(root / profile / "manifest.json", record["manifest"])
        journal.unlink()
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    else:  # crashed between the renames: the old folder goes back
        if old is not None and old.exists():
            old.rename(target)
        journal.unlink()
    return True


class Report:
    """Writes one chapter's items under `results/<profile>/<chapter>/`.

    Creating it records the parameters and forgets the chapter's previous manifest
    entries, so the manifest lists only what this run made.
    """

    def __init__(
        self,
        chapter: str,
        profile: str,
        params: dict[str, Any],
        root: Path | None = None,
        display: bool = True,
        run_note: str | None = None,
    ):
        self.chapter = chapter
        self.profile = check_profile(profile)
        self.params = dict(params)
        self.run_note = run_note  # the device and precision, for captions
        if run_note:
            self.params["computed on"] = run_note
        self.root = Path(root) if root is not None else paths.results_root()
        self.run_dir = self.root / profile
        self.dir = self.run_dir / chapter
        self.dir.mkdir(parents=True, exist_ok=True)
        self.show = display
        self.glued: dict[str, Any] = {}
        write_json(self.dir / "parameters.json", {"chapter": chapter, "profile": profile, **self.params})
        with _locked(self.manifest_path):
            manifest = read_manifest(profile, self.root)
            manifest["items"] = {k: v for k, v in manifest["items"].items() if v.get("chapter") != chapter}
            for key in ("comparisons", "compression"):
                manifest.setdefault(key, {}).pop(chapter, None)
            write_json(self.manifest_path, manifest)
        sns.set_theme(context="notebook", style="whitegrid")

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / "manifest.json"

    def _stem(self, item: str, name: str | None) -> str:
        if not ITEM_ID.match(item):
            raise ValueError(f"item={item!r} is not an item ID like 'B-T1' or 'D-F10'")
        return f"{item}-{name}" if name else item

    def _caption(self, caption: str) -> str:
        return f"{caption} Computed on {self.run_note}." if self.run_note else caption

    def _record(self, item: str, files: list[Path], caption: str, kind: str) -> None:
        rel = [str(f.relative_to(self.run_dir)) for f in files]
        with _locked(self.manifest_path):
            manifest = read_manifest(self.profile, self.root)
            entry = manifest["items"].get(item)
            if entry is None or entry.get("chapter") != self.chapter:
                entry = {"chapter": self.chapter, "kind": kind, "files": [], "captions": []}
            entry["files"] = sorted(set(entry["files"]) | set(rel))
            if caption not in entry["captions"]:
                entry["captions"].append(caption)
            entry.setdefault("file_captions", {}).update({path: caption for path in rel})
            entry["params"] = self.params
            entry["written"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            manifest["items"][item] = entry
            write_json(self.manifest_path, manifest)

    def table(
        self, item: str, df: pd.DataFrame, caption: str, name: str | None = None, precision: int = 4
    ) -> pd.DataFrame:
        """Write `df` as `<ID>[-name].csv` (every digit), record it, and show it with `caption`,
        its numbers formatted for reading (`tables.readable`; `precision` is no longer used). The
        shown table names its CSV in the output's metadata (`tables.OUTPUT_KEY`), so a book build
        can render it again from the file."""
        caption = self._caption(caption)
        path = self.dir / f"{self._stem(item, name)}.csv"
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=True)
        self._record(item, [path], caption, "table")
        if self.show:
            rel = str(path.relative_to(self.run_dir))
            display(HTML(tables.to_html(df, caption, item)), metadata={tables.OUTPUT_KEY: {"table": rel}})
        return df

    def figure(self, item: str, fig: plt.Figure, caption: str, name: str | None = None) -> Path:
        """Write `fig` as `<ID>[-name].png` and `.svg`, record it, show it, and close it."""
        caption = self._caption(caption)
        stem = self._stem(item, name)
        files = []
        for ext in ("png", "svg"):
            path = self.dir / f"{stem}.{ext}"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
            files.append(path)
        self._record(item, files, caption, "figure")
        if self.show:  # show the file written, whatever matplotlib backend the kernel has
            display(Image(filename=str(files[0])))
            _display_caption(item, caption)
        plt.close(fig)
        return files[0]

    def text(self, item: str, text: str, caption: str, name: str | None = None) -> Path:
        """Write a listing (for example a printed model) as `<ID>[-name].txt` and record it."""
        path = self.dir / f"{self._stem(item, name)}.txt"
        write_text(path, text)
        self._record(item, [path], caption, "listing")
        if self.show:
            print(text)
        return path

    def _append(self, key: str, row: dict[str, Any]) -> None:
        with _locked(self.manifest_path):
            manifest = read_manifest(self.profile, self.root)
            rows = manifest.setdefault(key, {}).setdefault(self.chapter, [])
            rows[:] = [r for r in rows if r.get("id") != row["id"]] + [row]
            write_json(self.manifest_path, manifest)

    def compare(
        self,
        item: str,
        quantity: str,
        ours: float,
        draft: float | str,
        source: str,
        spread: float | None = None,
        draft_spread: float | None = None,
        spread_what: str | None = None,
        draft_spread_what: str | None = None,
    ) -> None:
        """Record one number the draft reports beside ours, for the Results at a glance page and the
        verdicts (`verdicts.verdict`). `draft` may be a text where the draft gives a bound ("> 60 %");
        `source` names the document; `spread` and `draft_spread`: 95 % half-widths of ours and of the
        draft's number, in its units, where known (recorded only when given), and what each is."""
        self._stem(item, None)
        row = {
            "id": f"{item}: {quantity}",
            "item": item,
            "quantity": quantity,
            "ours": float(ours),
            "draft": draft if isinstance(draft, str) else float(draft),
            "source": source,
            "profile": self.profile,
        }
        for key, value in (("spread", spread), ("draft_spread", draft_spread)):
            if value is not None:
                if not value >= 0:
                    raise ValueError(f"{key}={value!r} must be a half-width >= 0")
                row[key] = float(value)
        for key, text in (("spread_what", spread_what), ("draft_spread_what", draft_spread_what)):
            if text is not None:
                row[key] = str(text)
        self._append("comparisons", row)

    def compression(
        self,
        item: str,
        model: str,
        *,
        data_set: str,
        parameters: int,
        base_parameters: int,
        mflops: float,
        base_mflops: float,
        accuracy: float,
        base_accuracy: float,
        speedup: float,
        how: str,
        method: str = "",
    ) -> None:
        """Record one compressed model beside the model it came from (accuracy as a fraction,
        `speedup` measured in the same run), for the Results at a glance page; `method` names its
        own marker there (a library's configuration beside the book's), else the item's marker."""
        self._stem(item, None)
        row = {
            "id": f"{item}: {data_set}: {model}",
            "item": item,
            "model": model,
            "data set": data_set,
            "parameters": int(parameters),
            "base parameters": int(base_parameters),
            "MFLOPs": float(mflops),
            "base MFLOPs": float(base_mflops),
            "accuracy": float(accuracy),
            "base accuracy": float(base_accuracy),
            "speedup": float(speedup),
            "how": how,
            "profile": self.profile,
        }
        if method:
            row["method"] = method
        self._append("compression", row)

    def record(self, findings: Findings | Mapping[str, Any]) -> None:
        """Glue, compare and record everything in `findings` (a mapping: glue only)."""
        if isinstance(findings, Mapping):
            findings = Findings(dict(findings))
        for name, value in findings.glue.items():
            self.glue(name, value)
        for row in findings.comparisons:
            self.compare(**row)
        for row in findings.compressions:
            self.compression(**row)

    def glue(self, name: str, value: Any, display: bool = False) -> None:
        """`myst_nb.glue` a number for the prose, and keep it in `glue.json`."""
        if hasattr(value, "item"):  # numpy and torch scalars -> Python numbers, which glue can format
            value = value.item()
        if name in self.glued and self.glued[name] == value:
            return  # glued already (findings of two data sets share a name): one key on the page
        self.glued[name] = value
        write_json(self.dir / "glue.json", self.glued)
        glue(name, value, display=display)
