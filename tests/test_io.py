"""Atomic writes: nothing half-written, nothing temporary left behind."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from netshrink import io


def test_atomic_write_flushes_to_disk_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(io.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    io.write_json(tmp_path / "a.json", {"x": 1})
    assert len(synced) == 2  # the file, then its folder
    assert (tmp_path / "a.json").read_text().strip().startswith("{")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    io.write_text(path, "old")
    with pytest.raises(RuntimeError), io.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_sigterm_during_a_write_removes_the_temporary_file(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, time
        from netshrink import io
        io.exit_on_sigterm()
        with io.atomic_path({str(tmp_path / "big.bin")!r}) as tmp:
            tmp.write_bytes(b"x" * 1000)
            print("writing", flush=True)
            time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert list(tmp_path.glob(".big.*.tmp.bin"))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_remove_stale_takes_only_a_dead_processs_leftovers(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = os.getpid()
    names = [f".model.{dead.pid}.k2j.tmp.pt", f".baselines.run-{dead.pid}", f".baselines.old-{dead.pid}",
             f".model.{me}.k2j.tmp.pt", "model.pt", ".hidden"]  # fmt: skip
    for name in names:
        (tmp_path / name).mkdir() if "run-" in name or "old-" in name else (tmp_path / name).write_text("x")
    removed = io.remove_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted(names[:3])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[3:])


def test_a_held_lock_refuses_a_second_holder_naming_the_process(tmp_path):
    lock = tmp_path / "run.lock"
    with io.hold_lock(lock, "chapter 'tiny' (smoke)", {"chapter": "tiny"}):
        with pytest.raises(io.Busy) as err, io.hold_lock(lock, "chapter 'tiny' (smoke)"):
            pytest.fail("a second holder got the lock")
        assert f"chapter 'tiny' (smoke) is already running in process {os.getpid()}" in str(err.value)
        assert f"kill {os.getpid()}" in str(err.value)
    with io.hold_lock(lock, "chapter 'tiny' (smoke)"):  # released at the end of the block
        pass


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    lock = tmp_path / "run.lock"
    code = textwrap.dedent(f"""
        import sys, time
        from netshrink import io
        with io.hold_lock({str(lock)!r}, "x"):
            print("held", flush=True)
            time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(io.Busy, match=f"process {holder.pid}"), io.hold_lock(lock, "x"):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with io.hold_lock(lock, "x"):  # the kernel dropped the dead process's lock
        pass
