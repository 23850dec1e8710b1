"""Where the project keeps its data, trained models and results.

Every location can be moved with an environment variable; the defaults live
inside the project folder (the nearest folder above the working directory that
holds `_toc.yml`), so notebooks run from `chapters/` or from the root alike.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding `_toc.yml`, else cwd."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return here


def data_root() -> Path:
    """The data root: `$NETSHRINK_DATA`, else `<project>/data`."""
    env = os.environ.get("NETSHRINK_DATA")
    return Path(env).resolve() if env else project_root() / "data"


def mirror_dir() -> Path | None:
    """The mirror folder: `$NETSHRINK_DATA_MIRROR`, else `../shared/data` beside the project.

    Returns None when the variable is set empty or the folder does not exist.
    """
    env = os.environ.get("NETSHRINK_DATA_MIRROR")
    if env is not None:
        return Path(env).resolve() if env and Path(env).is_dir() else None
    default = project_root().parent / "shared" / "data"
    return default if default.is_dir() else None


def results_root() -> Path:
    """The results root: `$NETSHRINK_RESULTS`, else `<project>/results`."""
    env = os.environ.get("NETSHRINK_RESULTS")
    return Path(env).resolve() if env else project_root() / "results"
