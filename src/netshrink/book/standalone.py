"""A chapter run outside the runner (plain papermill, Jupyter, a script) never touches the last
good results until it has succeeded: it writes into a fresh results root beside them and
publishes it whole (`report.publish`) when its process ends after a successful last cell.

The runner stages every run itself and says so to the kernel through `STAGED_ENV`."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from netshrink import paths
from netshrink.book.report import publish

STAGED_ENV = "NETSHRINK_STAGED"  # "1": the results root is already a run's own (the runner's)


def staged_by_runner() -> bool:
    return os.environ.get(STAGED_ENV) == "1"


def staging_root(chapter: str, results: Path | None = None) -> Path:
    """`results/.<chapter>.run-<pid>`: a fresh results root for this process (removed by the
    next run's `io.remove_stale` if the process dies)."""
    root = (results or paths.results_root()) / f".{chapter}.run-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    return root


class PublishAtExit:
    """Publish chapter `chapter` of `profile` from `staging` into `results` when the process
    ends, if the last cell (IPython) ran without an error and no exception ended a script;
    always remove `staging`."""

    def __init__(self, chapter: str, profile: str, staging: Path, results: Path):
        self.chapter, self.profile, self.staging, self.results = chapter, profile, staging, results
        self.ok = True
        shell = _ipython()
        if shell is not None:
            shell.events.register("post_run_cell", self._after_cell)
        else:
            self._excepthook = sys.excepthook
            sys.excepthook = self._on_exception
        atexit.register(self.finish)

    def _after_cell(self, result: Any) -> None:
        self.ok = bool(result.success)  # a cell rerun after a fix counts, as in Jupyter

    def _on_exception(self, *exc_info: Any) -> None:
        self.ok = False
        self._excepthook(*exc_info)

    def finish(self) -> None:
        try:
            if self.ok and (self.staging / self.profile / self.chapter).is_dir():
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
