"""Chapters run as separate jobs (the CI matrix) merge into exactly what one run of them all
leaves; a chapter missing, present twice, or made by another commit or profile is an error
naming it, before anything is written."""

import json
import shutil

import pytest

from netshrink.book import chapters, combine, report, runner, sources


def _split(results, tmp_path):
    """One results root per chapter, as each matrix job leaves it: the chapter's folder, its
    executed notebook, and a manifest of its own entries only."""
    whole = report.read_manifest("smoke", results)
    roots = []
    for chapter in chapters.CHAPTERS.values():
        root = tmp_path / f"job-{chapter.name}"
        shutil.copytree(results / "smoke" / chapter.name, root / "smoke" / chapter.name)
        notebook = sources.executed_notebook(results, "smoke", chapter)
        sources.executed_notebook(root, "smoke", chapter).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(notebook, sources.executed_notebook(root, "smoke", chapter))
        own = {
            "profile": "smoke",
            "items": {k: v for k, v in whole["items"].items() if v["chapter"] == chapter.name},
        }
        for key in ("comparisons", "compression"):
            own[key] = {chapter.name: whole[key][chapter.name]} if chapter.name in whole.get(key, {}) else {}
        (root / "smoke" / "manifest.json").write_text(json.dumps(own))
        roots.append(root)
    return whole, roots


def test_chapter_jobs_merge_into_exactly_one_runs_manifest(smoke_run, tmp_path, monkeypatch, capsys):
    results, _ = smoke_run
    whole, roots = _split(results, tmp_path)
    merged = tmp_path / "merged"
    monkeypatch.setenv("NETSHRINK_RESULTS", str(merged))
    assert runner.main(["--profile", "smoke", "--merge", *map(str, roots)]) == 0
    assert "merged baselines, random_pruning" in capsys.readouterr().out
    got = report.read_manifest("smoke", merged)
    assert got["items"] == whole["items"]
    for key in ("comparisons", "compression"):
        assert got.get(key, {}) == {k: v for k, v in whole.get(key, {}).items()}
    for chapter in chapters.CHAPTERS.values():
        assert sources.executed_notebook(merged, "smoke", chapter).is_file()
        assert (roots[0].parent / f"job-{chapter.name}" / "smoke" / chapter.name).is_dir(), "sources kept"


def test_a_missing_twice_present_or_foreign_chapter_is_refused_naming_it(smoke_run, tmp_path):
    results, _ = smoke_run
    _, roots = _split(results, tmp_path)
    target = tmp_path / "merged"
    with pytest.raises(ValueError, match="chapter.s. vgg_case_study missing"):
        combine.merge(roots[:-1], "smoke", target)
    with pytest.raises(ValueError, match="chapter 'baselines' is present twice"):
        combine.merge([*roots, roots[0]], "smoke", target)
    with pytest.raises(ValueError, match="holds no 'quick' results .it holds \\['smoke'\\]"):
        combine.merge(roots, "quick", target)
    record = roots[1] / "smoke" / "random_pruning" / "provenance.json"
    prov = json.loads(record.read_text())
    record.write_text(json.dumps({**prov, "commit": "0123456789abcdef"}))
    with pytest.raises(ValueError, match="different commits .*random_pruning by 0123456789"):
        combine.merge(roots, "smoke", target)
    assert not target.exists(), "nothing is written before every check passed"
    assert combine.merge([roots[0]], "smoke", target, expected=["baselines"]) == ["baselines"]
