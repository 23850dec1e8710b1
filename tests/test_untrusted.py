"""Issue 41: results that arrive from elsewhere (`--adopt`, `--merge`) are untrusted. Each is
copied and checked before anything is moved (regular files only, inside the folder, of known
kinds and sizes; a provenance of this profile, chapter and a commit of ours; manifest entries),
then published all-or-nothing on the results' own filesystem under the chapters' run locks.

Every test feeds built results roots (no chapter runs): `_job` writes one as a run leaves it."""

import json
import os
import subprocess
import tarfile
import tempfile

import pytest

from netshrink.book import chapters, combine, provenance, report, runner, sources
from netshrink.io import Busy, file_sha256, hold_lock, write_json

RANDOM, BASE, VGG = chapters.RANDOM_PRUNING, chapters.BASELINES, chapters.VGG_CASE_STUDY


@pytest.fixture(scope="module")
def head(project_root):
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def _job(root, chapter, head, profile="smoke", value="0.97", record=None):
    """A results root as a finished run of `chapter` leaves it: folder, record, manifest, notebook."""
    folder = root / profile / chapter.name
    folder.mkdir(parents=True)
    (folder / "X-T1.csv").write_text(f"model,accuracy\nmlp,{value}\n")
    (folder / "parameters.json").write_text("{}")
    prov = {"chapter": chapter.name, "profile": profile, "commit": head, "date": "2026-12-07T06:00:00+00:00",
            "torch": "2", "wall seconds": 1.0, "notebook digest": "0" * 16, "parameters": {}}  # fmt: skip
    prov["files"] = {p.name: file_sha256(p) for p in sorted(folder.iterdir())}  # as the runner records
    write_json(folder / provenance.RECORD, {**prov, **(record or {})})
    entry = {
        "chapter": chapter.name,
        "files": [f"{chapter.name}/X-T1.csv"],
        "captions": ["c"],
        "kind": "table",
    }
    write_json(root / profile / "manifest.json", {"profile": profile, "items": {chapter.items[0]: entry}})
    notebook = sources.executed_notebook(root, profile, chapter)
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text(json.dumps({"ran": value}))
    return root


def _snapshot(results):
    """Every result file's bytes (a manifest's content), locks and hidden files left out."""
    out = {}
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results)
        if path.is_file() and path.suffix != ".lock" and not any(p.startswith(".") for p in rel.parts):
            out[rel.as_posix()] = path.read_bytes()
            if path.name == "manifest.json":
                out[rel.as_posix()] = {k: v for k, v in json.loads(path.read_text()).items() if v}
    return out


@pytest.fixture
def here(tmp_path, head):
    """The results root things are taken into, holding good random_pruning results."""
    return _job(tmp_path / "here", RANDOM, head, value="0.50")


def _tar(path, root, extra=()):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root / "smoke", arcname="smoke")
        for info, data in extra:
            tar.addfile(info, data)
    return path


def test_adopt_and_merge_work_with_tmpdir_on_another_filesystem(tmp_path, here, head, monkeypatch):
    """Item 2: a tmpfs TMPDIR made the rename across filesystems fail (EXDEV) after the old
    folder was moved aside; the scratch folder now lies inside the results root."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the tests' temporary folder")
    other = tempfile.mkdtemp(dir="/dev/shm")
    monkeypatch.setattr(tempfile, "tempdir", other)
    monkeypatch.setenv("TMPDIR", other)
    bundle = _tar(tmp_path / "results.tgz", _job(tmp_path / "gpu", RANDOM, head, value="0.99"))
    assert combine.adopt(bundle, "smoke", here) == ["random_pruning"]
    assert "0.99" in (here / "smoke" / "random_pruning" / "X-T1.csv").read_text()
    assert json.loads(sources.executed_notebook(here, "smoke", RANDOM).read_text()) == {"ran": "0.99"}
    assert not list((here / "smoke").glob(".*.publish.json")), "a journal was left"
    assert sorted(p.name for p in here.iterdir()) == ["smoke"], "a scratch folder was left"
    jobs = [_job(tmp_path / "a", RANDOM, head, value="0.7"), _job(tmp_path / "b", BASE, head)]
    assert combine.merge(jobs, "smoke", here, expected=["random_pruning", "baselines"])
    assert "0.7" in (here / "smoke" / "random_pruning" / "X-T1.csv").read_text()


def test_a_failed_publish_rolls_back_every_chapter_of_the_merge(tmp_path, here, head, monkeypatch):
    """Item 2/4: all-or-nothing: a publish that fails on the second chapter gives the first its
    previous results, folder, manifest entries and notebook, back; a chapter that had none is removed."""
    before = _snapshot(here)
    jobs = [_job(tmp_path / "a", RANDOM, head, value="0.7"), _job(tmp_path / "b", BASE, head)]
    real = combine.publish
    calls = []

    def failing(chapter, *args):
        calls.append(chapter)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(chapter, *args)

    monkeypatch.setattr(combine, "publish", failing)
    with pytest.raises(OSError, match="No space left"):
        combine.merge(jobs, "smoke", here, expected=["random_pruning", "baselines"])
    monkeypatch.setattr(combine, "publish", real)
    assert _snapshot(here) == {k: v for k, v in before.items()}, "the first chapter was not rolled back"
    jobs.reverse()
    monkeypatch.setattr(combine, "publish", failing)
    calls.clear()
    with pytest.raises(OSError):
        combine.merge(jobs, "smoke", here, expected=["random_pruning", "baselines"])
    assert not (here / "smoke" / "baselines").exists() and _snapshot(here) == before


def test_adopt_waits_for_no_run_it_takes_the_chapters_lock(tmp_path, here, head):
    """Item 3: a run of the chapter going on (its lock held) refuses the adoption."""
    before = _snapshot(here)
    lock = runner.running_dir(here, "smoke") / "random_pruning.lock"  # the one a run holds
    gpu = _job(tmp_path / "gpu", RANDOM, head, value="0.99")
    with (
        hold_lock(lock, "test run"),
        pytest.raises(Busy, match="chapter 'random_pruning' .smoke. is already"),
    ):
        combine.adopt(gpu, "smoke", here)
    with hold_lock(lock, "test run"), pytest.raises(Busy):
        combine.merge([gpu], "smoke", here, expected=["random_pruning"])
    assert _snapshot(here) == before
    assert combine.chapter_lock(here, "smoke", "random_pruning") == lock


def test_merge_checks_every_root_before_publishing_anything(tmp_path, here, head):
    """Item 4: a root without manifest.json came after chapters already published."""
    before = _snapshot(here)
    good = _job(tmp_path / "a", BASE, head)
    bad = _job(tmp_path / "b", VGG, head)
    (bad / "smoke" / "manifest.json").unlink()
    with pytest.raises(ValueError, match="manifest.json is missing"):
        combine.merge([good, bad], "smoke", here, expected=["baselines", "vgg_case_study"])
    (bad / "smoke" / "manifest.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="manifest.json is not valid JSON"):
        combine.merge([good, bad], "smoke", here, expected=["baselines", "vgg_case_study"])
    (bad / "smoke" / "manifest.json").write_text('{"items": []}')
    with pytest.raises(ValueError, match="holds no 'items' mapping"):
        combine.merge([good, bad], "smoke", here, expected=["baselines", "vgg_case_study"])
    assert _snapshot(here) == before and sorted(p.name for p in here.iterdir()) == ["smoke"]


def _hostile_folders(tmp_path, head):
    """(name, results root, message) for every folder whose files must not be taken."""
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    out = []

    def job(name):
        return _job(tmp_path / name, RANDOM, head)

    root = job("link-file")
    target = root / "smoke" / "random_pruning" / "X-T1.csv"
    target.unlink()
    target.symlink_to(secret)
    out.append(("a CSV linked outside", root, "X-T1.csv is a symbolic link"))
    root = job("link-dir")
    os.symlink(tmp_path, root / "smoke" / "random_pruning" / "more")
    out.append(("a folder linked outside", root, "more is a symbolic link"))
    root = job("link-chapter")
    real = tmp_path / "elsewhere"
    (root / "smoke" / "random_pruning").rename(real)
    (root / "smoke" / "random_pruning").symlink_to(real)
    out.append(("the chapter folder a link", root, "random_pruning is a symbolic link"))
    root = job("link-manifest")
    (root / "smoke" / "manifest.json").rename(tmp_path / "m.json")
    (root / "smoke" / "manifest.json").symlink_to(tmp_path / "m.json")
    out.append(("the manifest a link", root, "manifest.json is a symbolic link"))
    root = job("fifo")
    os.mkfifo(root / "smoke" / "random_pruning" / "pipe.csv")
    out.append(("a named pipe", root, "pipe.csv is not a regular file"))
    root = job("kind")
    (root / "smoke" / "random_pruning" / "run.sh").write_text("rm -rf ~\n")
    out.append(("an unknown kind of file", root, "run.sh is of an unknown kind"))
    root = job("record")
    write_json(root / "smoke" / "random_pruning" / "provenance.json", {"chapter": "random_pruning"})
    out.append(("a record without fields", root, "lacks the field 'profile'"))
    root = job("edited")
    (root / "smoke" / "random_pruning" / "X-T1.csv").write_text("model,accuracy\nmlp,1.0\n")
    out.append(("a file edited after the run", root, "X-T1.csv changed since the run"))
    for name, rel in (("dotdot", "random_pruning/../../../secret.csv"), ("absolute", str(secret)),
                      ("other-chapter", "baselines/B-T1.csv")):  # fmt: skip
        root = job(name)
        manifest = json.loads((root / "smoke" / "manifest.json").read_text())
        manifest["items"][RANDOM.items[0]]["files"] = [rel]
        write_json(root / "smoke" / "manifest.json", manifest)
        out.append((f"a manifest path {name}", root, "allowed: paths inside random_pruning/"))
    return out


def test_folders_with_links_odd_files_or_paths_outside_are_refused_before_anything_moves(
    tmp_path, here, head
):
    """Item 5: a CSV linked to a file outside the project was copied with that file's contents."""
    before = _snapshot(here)
    hostile = _hostile_folders(tmp_path, head)
    for name, root, message in hostile:
        for take in ("adopt", "merge"):
            with pytest.raises(ValueError, match=message.replace(".", r"\.")) as err:
                if take == "adopt":
                    combine.adopt(root, "smoke", here)
                else:
                    combine.merge([root], "smoke", here, expected=["random_pruning"])
            assert "\n" not in str(err.value), name
            assert _snapshot(here) == before, f"{name}: results changed"
    assert not any(b"hunter2" in data for data in _snapshot(here).values())
    assert sorted(p.name for p in here.iterdir()) == ["smoke"], "a scratch folder was left"


def test_file_sizes_are_limited(tmp_path, here, head, monkeypatch):
    from netshrink.book import untrusted

    root = _job(tmp_path / "big", RANDOM, head)
    monkeypatch.setitem(untrusted.KINDS, ".csv", 10)
    with pytest.raises(ValueError, match="X-T1.csv holds 24 bytes; allowed: at most 10"):
        combine.adopt(root, "smoke", here)
    with pytest.raises(ValueError, match="unknown kind or too large"):
        combine.adopt(_tar(tmp_path / "big.tgz", root), "smoke", here)


def test_tarballs_with_links_paths_outside_or_that_are_no_tarball_are_refused(tmp_path, here, head):
    """Items 5 and 14: `--adopt` of a file that is not a tarball gave a traceback."""
    before = _snapshot(here)
    root = _job(tmp_path / "gpu", RANDOM, head)
    link = tarfile.TarInfo("smoke/random_pruning/X-T2.csv")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("smoke/random_pruning/X-T3.csv")
    hard.type, hard.linkname = tarfile.LNKTYPE, "smoke/manifest.json"
    up = tarfile.TarInfo("../outside.csv")
    cases = [
        (_tar(tmp_path / "link.tgz", root, [(link, None)]), "X-T2.csv is a link or device"),
        (_tar(tmp_path / "hard.tgz", root, [(hard, None)]), "X-T3.csv is a link or device"),
        (_tar(tmp_path / "up.tgz", root, [(up, None)]), "outside.csv lies outside the folder"),
    ]
    text = tmp_path / "notes.txt"
    text.write_text("not a tarball\n")
    cases.append((text, "notes.txt is not a readable tarball"))
    empty = tmp_path / "empty.tgz"
    empty.write_bytes(b"")
    cases.append((empty, "empty.tgz is not a readable tarball"))
    for source, message in cases:
        with pytest.raises(ValueError, match=message):
            combine.adopt(source, "smoke", here)
    assert _snapshot(here) == before
    assert not (tmp_path / "outside.csv").exists()


def test_adopt_checks_the_records_profile_chapter_and_commit(tmp_path, here, head):
    """Item 7: a vgg_case_study full run was adopted as smoke random_pruning."""
    before = _snapshot(here)
    cases = [
        (_job(tmp_path / "p", RANDOM, head, record={"profile": "full"}), "says profile 'full'"),
        (
            _job(tmp_path / "c", RANDOM, head, record={"chapter": "vgg_case_study"}),
            "says chapter 'vgg_case_study'",
        ),
        (_job(tmp_path / "u", RANDOM, "f" * 40), "commit ffffffffff, which this repository does not hold"),
        (_job(tmp_path / "x", RANDOM, "0123abc"), "names commit '0123abc'; allowed: a full commit hash"),
    ]
    for root, message in cases:
        with pytest.raises(ValueError, match=message):
            combine.adopt(root, "smoke", here)
    assert _snapshot(here) == before


def test_merge_checks_the_chapter_its_entries_and_the_selection(tmp_path, here, head):
    """Item 7: merge took the record's word for nothing, zero-entry and unselected chapters."""
    before = _snapshot(here)
    wrong = _job(tmp_path / "c", RANDOM, head, record={"chapter": "baselines"})
    with pytest.raises(ValueError, match="says chapter 'baselines'; allowed: 'random_pruning'"):
        combine.merge([wrong], "smoke", here, expected=["random_pruning"])
    empty = _job(tmp_path / "e", RANDOM, head)
    write_json(empty / "smoke" / "manifest.json", {"profile": "smoke", "items": {}})
    with pytest.raises(ValueError, match="lists no item of chapter 'random_pruning'"):
        combine.merge([empty], "smoke", here, expected=["random_pruning"])
    extra = [_job(tmp_path / "a", RANDOM, head), _job(tmp_path / "b", BASE, head)]
    with pytest.raises(
        ValueError, match="chapter 'baselines' in .* was not selected; allowed: random_pruning"
    ):
        combine.merge(extra, "smoke", here, expected=["random_pruning"])
    assert _snapshot(here) == before


def test_the_runner_says_one_line_for_a_bad_status_profile_adopt_duplicate_chapters_and_ctrl_c(
    tmp_path, results_dir, capsys, monkeypatch
):
    """Item 14: --status with a bad profile, --adopt of a non-tarball, Ctrl-C, duplicate --chapters."""
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"\x00" * 100)
    for argv, message in [
        (["--profile", "nope", "--status"], "profile='nope' is not known"),
        (["--profile", "smoke", "--adopt", str(junk)], "junk.tgz is not a readable tarball"),
        (
            ["--profile", "smoke", "--chapters", "baselines,baselines", "--no-build"],
            "names baselines more than once",
        ),
        (
            ["--profile", "smoke", "--chapters", "baselines baselines", "--merge", str(tmp_path)],
            "more than once",
        ),
    ]:
        assert runner.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_chapter", interrupted)
    assert runner.main(["--profile", "smoke", "--chapters", "baselines", "--no-build"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("error: interrupted (Ctrl-C)") and err.count("\n") == 1


def test_a_good_adoption_still_replaces_only_its_chapter(tmp_path, here, head):
    write_json(here / "smoke" / "manifest.json", {"profile": "smoke", "items": {
        **report.read_manifest("smoke", here)["items"], "B-T1": {"chapter": "baselines"}}})  # fmt: skip
    assert combine.adopt(_job(tmp_path / "gpu", RANDOM, head, value="0.99"), "smoke", here) == [
        "random_pruning"
    ]
    items = report.read_manifest("smoke", here)["items"]
    assert items["B-T1"] == {"chapter": "baselines"} and items[RANDOM.items[0]]["chapter"] == "random_pruning"
