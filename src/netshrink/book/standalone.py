"""A chapter run outside the runner (plain papermill, Jupyter, a script) never touches the last
good results until it has succeeded: it writes into a fresh results root beside them and
publishes it whole (`report.publish`) when its process ends after the notebook's last cell ran
without an error (in IPython: the last cell that ran was the notebook's last code cell, so a kernel
shut down halfway publishes nothing) and the run made every item of the chapter.

The runner stages every run itself and says so to the kernel through `STAGED_ENV`."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat

from netshrink import paths
from netshrink.book.report import publish, read_manifest

STAGED_ENV = "NETSHRINK_STAGED"  # "1": the results root is already a run's own (the runner's)
MODELS_RECORD = "models.json"  # `chapter.MODELS_RECORD`: the runner's input, never a result


def staged_by_runner() -> bool:
    return os.environ.get(STAGED_ENV) == "1"


def staging_root(chapter: str, results: Path | None = None) -> Path:
    """`results/.<chapter>.run-<pid>`: a fresh results root for this process (removed by the
    next run's `io.remove_stale` if the process dies)."""
    root = (results or paths.results_root()) / f".{chapter}.run-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    return root


def last_code_cell(notebook: Path) -> str | None:
    """The source of the notebook's last non-empty code cell (stripped), None when unreadable."""
    try:
        cells = nbformat.read(notebook, as_version=4).cells
    except (OSError, ValueError, nbformat.reader.NotJSONError):
        return None
    code = [c.source.strip() for c in cells if c.cell_type == "code" and c.source.strip()]
    return code[-1] if code else None


class PublishAtExit:
    """Publish chapter `chapter` of `profile` from `staging` into `results` when the process
    ends, if no exception ended a script, or (IPython) the last cell that ran was the notebook's
    last code cell (`last_cell`, its source; any cell when None) and ran without an error; and
    if the run made every one of `items`. Always remove `staging`."""

    def __init__(
        self,
        chapter: str,
        profile: str,
        staging: Path,
        results: Path,
        last_cell: str | None = None,
        items: tuple[str, ...] = (),
    ):
        self.chapter, self.profile, self.staging, self.results = chapter, profile, staging, results
        self.last_cell, self.items = last_cell, tuple(items)
        self.ok = True
        shell = _ipython()
        if shell is not None:
            shell.events.register("post_run_cell", self._after_cell)
        else:
            self._excepthook = sys.excepthook
            sys.excepthook = self._on_exception
        atexit.register(self.finish)

    def _after_cell(self, result: Any) -> None:
        source = str(getattr(result.info, "raw_cell", "") or "").strip()  # a cell rerun after a fix counts
        self.ok = bool(result.success) and (self.last_cell is None or source == self.last_cell)

    def _on_exception(self, *exc_info: Any) -> None:
        self.ok = False
        self._excepthook(*exc_info)

    def finish(self) -> None:
        made = self.staging / self.profile / self.chapter
        try:
            if not made.is_dir():
                return
            missing = sorted(set(self.items) - set(read_manifest(self.profile, self.staging)["items"]))
            if not self.ok or missing:
                why = f"it made no {', '.join(missing)}" if self.ok else "its last cell did not run or failed"
                print(f"netshrink: chapter {self.chapter!r} ({self.profile}) not published: {why}; the "
                      "last good results are left as they were", file=sys.stderr)  # fmt: skip
                return
            (made / MODELS_RECORD).unlink(missing_ok=True)
            publish(self.chapter, self.profile, self.staging, self.results)
            print(f"netshrink: published chapter {self.chapter!r} ({self.profile}) into "
                  f"{self.results / self.profile}", file=sys.stderr)  # fmt: skip
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the book's packages
        return None
    return get_ipython()
