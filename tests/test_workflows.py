"""The GitHub Actions workflows are valid (checked against the workflow schema, offline) and the
chapter matrix runs every chapter of the book."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netshrink.book import chapters

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_follows_the_github_workflow_schema(path):
    checker = Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    step: []\n")
    checker = Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", str(broken)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0


def test_the_chapter_matrix_runs_every_chapter_and_merges_them():
    flow = yaml.safe_load(next(p for p in WORKFLOWS if p.name == "chapters.yml").read_text())
    assert flow["jobs"]["chapter"]["strategy"]["matrix"]["chapter"] == list(chapters.CHAPTERS)
    merge = "\n".join(step.get("run", "") for step in flow["jobs"]["book"]["steps"])
    assert "--merge" in merge and "check-site" in merge
