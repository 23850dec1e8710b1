"""Results that arrive from elsewhere (`runner --adopt`, `--merge`: GPU tarballs, CI artifacts)
are untrusted data: copied file by file into a scratch folder on the results' own filesystem,
and checked there, before anything of the results is touched.

`stage` copies regular files only (no symbolic link, device or pipe; opened without following
links), of the kinds a run writes (`KINDS`) and below their size limit, that lie inside the
folder. `check_chapter` then checks a staged chapter: its provenance record (fields, profile,
chapter, file digests), its manifest's entries (at least one, every file inside the
chapter's folder and present) and its executed notebook. Every error is a `ValueError` whose
one line names the file and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from netshrink.book import provenance, sources
from netshrink.book.chapter import Chapter

__all__ = ["KINDS", "MAX_FILES", "check_chapter", "manifest_of", "stage", "unpack"]

MiB = 1 << 20
KINDS = {".csv": 64 * MiB, ".json": 64 * MiB, ".png": 32 * MiB, ".svg": 32 * MiB,
         ".txt": 8 * MiB, ".ipynb": 256 * MiB}  # fmt: skip
MAX_FILES = 5000
HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]


def _refuse(what: str, path: Any, problem: str) -> ValueError:
    return ValueError(f"{what}: {path} {problem}")


def _copy_file(src: Path, dest: Path, what: str) -> None:
    """Copy the regular file `src` (opened without following a link) to `dest`, refusing other
    kinds and sizes (checked on the open file, so a file swapped after the check is caught)."""
    limit = KINDS.get(src.suffix.lower())
    if limit is None:
        raise _refuse(what, src, f"is of an unknown kind; allowed: {', '.join(KINDS)} files")
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise _refuse(what, src, f"cannot be opened without following a link ({err.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(what, src, "is not a regular file; allowed: regular files only")
        if info.st_size > limit:
            raise _refuse(what, src, f"holds {info.st_size:,} bytes; allowed: at most {limit:,}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "xb") as out:
            copied = 0
            for block in iter(lambda: f.read(MiB), b""):
                copied += len(block)
                if copied > limit:  # grew while being read
                    raise _refuse(what, src, f"grew beyond {limit:,} bytes while being copied")
                out.write(block)


def stage(source: Path, parts: list[str], dest: Path, what: str) -> None:
    """Copy `source/<part>` (a file or a folder, each `part` a relative path) for every part
    that exists into `dest/<part>`, file by file (`_copy_file`). A symbolic link anywhere, in
    the parts' path too, or anything but regular files and folders is refused."""
    count = 0
    for part in parts:
        path = source
        for name in PurePosixPath(part).parts:
            path = path / name
            if path.is_symlink():
                raise _refuse(what, path, "is a symbolic link; allowed: regular files and folders only")
        if path.is_file():
            _copy_file(path, dest / part, what)
            continue
        for top, folders, files in os.walk(path):  # never follows links (followlinks=False)
            for name in folders + files:
                entry = Path(top) / name
                mode = entry.lstat().st_mode
                if stat.S_ISLNK(mode):
                    raise _refuse(what, entry, "is a symbolic link; allowed: regular files and folders only")
                if stat.S_ISDIR(mode):
                    continue
                count += 1
                if count > MAX_FILES:
                    raise _refuse(what, source, f"holds more than {MAX_FILES} files; allowed: fewer")
                _copy_file(entry, dest / entry.relative_to(source), what)


def unpack(archive: Path, dest: Path, what: str) -> None:
    """Extract the tarball `archive` into `dest` after checking its members: regular files and
    folders only, inside `dest`, at most `MAX_FILES` of them and of the sizes of `KINDS`."""
    try:
        tar = tarfile.open(archive)  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError) as err:
        problem = f"is not a readable tarball ({_one_line(err)})"
        raise _refuse(
            what, archive, f"{problem}; allowed: a results folder or tools/device-chapter's results.tgz"
        ) from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise _refuse(what, archive, f"is a damaged tarball ({_one_line(err)})") from None
        if len(members) > MAX_FILES:
            raise _refuse(what, archive, f"holds {len(members)} members; allowed: at most {MAX_FILES}")
        for m in members:
            name = PurePosixPath(m.name)
            if not (m.isfile() or m.isdir()):
                raise _refuse(what, f"{archive}:{m.name}", "is a link or device; allowed: regular files")
            if name.is_absolute() or ".." in name.parts:
                raise _refuse(what, f"{archive}:{m.name}", "lies outside the folder; allowed: relative paths")
            if m.isfile() and m.size > KINDS.get(name.suffix.lower(), 0):
                raise _refuse(what, f"{archive}:{m.name}", "is of an unknown kind or too large; allowed: "
                              + ", ".join(f"{k} up to {v // MiB} MiB" for k, v in KINDS.items()))  # fmt: skip
        tar.extractall(dest, filter="data")


def manifest_of(root: Path, profile: str, what: str) -> dict[str, Any]:
    """The staged manifest of `root/<profile>`: present, JSON, with an `items` mapping."""
    path = root / profile / "manifest.json"
    if not path.is_file():
        raise _refuse(what, path, "is missing; allowed: a results root with its manifest.json")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise _refuse(what, path, f"is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items"), dict):
        raise _refuse(what, path, "holds no 'items' mapping; allowed: a manifest that report.Report wrote")
    if not all(isinstance(v, dict) for v in manifest["items"].values()):
        raise _refuse(what, path, "holds an item that is not a mapping")
    return manifest


def check_chapter(root: Path, profile: str, chapter: Chapter, what: str) -> dict[str, Any]:
    """Check the staged chapter `root/<profile>/<chapter>`; return its provenance record."""
    folder = root / profile / chapter.name
    try:
        prov = provenance.read(root, profile, chapter.name)
    except provenance.BadRecord as err:
        raise ValueError(f"{what}: {err}") from None
    if prov is None:
        raise _refuse(what, folder, f"has no {provenance.RECORD} (not a finished run)")
    record = folder / provenance.RECORD
    if prov["profile"] != profile:
        raise _refuse(what, record, f"says profile {prov['profile']!r}; allowed: {profile!r}")
    if prov["chapter"] != chapter.name:
        raise _refuse(what, record, f"says chapter {prov['chapter']!r}; allowed: {chapter.name!r}")
    if provenance.FILES in prov:
        reasons = provenance.file_reasons(prov, folder)
        if reasons:
            raise ValueError(f"{what}: {reasons[0]}")
    items = manifest_of(root, profile, what)["items"]
    entries = {k: v for k, v in items.items() if v.get("chapter") == chapter.name}
    if not entries:
        raise _refuse(what, root / profile / "manifest.json", f"lists no item of chapter {chapter.name!r}; "
                      "allowed: a finished run's manifest")  # fmt: skip
    for item, entry in entries.items():
        files = entry.get("files", [])
        for rel in files if isinstance(files, list) else [files]:
            name = PurePosixPath(str(rel))
            if name.is_absolute() or ".." in name.parts or name.parts[:1] != (chapter.name,):
                raise _refuse(what, f"manifest item {item}", f"names file {str(rel)[:200]!r}; allowed: paths "
                              f"inside {chapter.name}/")  # fmt: skip
            if not (root / profile / name).is_file():
                raise _refuse(what, f"manifest item {item}", f"names file {str(rel)!r}, which is not there")
    if not sources.executed_notebook(root, profile, chapter).is_file():
        raise _refuse(what, f"chapter {chapter.name!r}", "has no executed notebook")
    return prov
