"""Run folders under stress: concurrent runs of one lab, atomic files under SIGKILL, and
listings that tell a result from a run in progress or a killed one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mlatlas.core.fileio import atomic_open, atomic_write_bytes, file_lock
from mlatlas.core.lab import Lab, isolated_registry, lab
from mlatlas.core.record import RunRecord
from mlatlas.core.runner import _new_run_dir, get_lab, latest_runs, list_runs, run_lab


def test_concurrent_runs_of_one_lab_get_distinct_folders(tmp_path):
    """Four processes start the same lab with the same seed in the same second: four run
    folders, each complete and listed once, with the same numbers."""
    cmd = [sys.executable, "-m", "mlatlas", "run", "optim", "adam_l2_vs_adamw", "--scale"]
    env = {**os.environ, "MLATLAS_PROGRESS": "0"}
    procs = [
        subprocess.Popen(
            [*cmd, "smoke", "--out", str(tmp_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    runs = list_runs(tmp_path, include_incomplete=True)
    assert len(runs) == 4 and len({r.dir for r in runs}) == 4
    assert all(r.status == "ok" for r in runs)
    assert len({json.dumps(r.claims, sort_keys=True) for r in runs}) == 1
    assert len(latest_runs(tmp_path)) == 1


def test_new_run_dir_is_race_free(tmp_path):
    spec = get_lab("optim", "adam_l2_vs_adamw")
    made: list[Path] = []
    barrier = threading.Barrier(8)

    def make():
        barrier.wait()
        made.append(_new_run_dir(tmp_path, spec, "smoke", 0))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and all(d.is_dir() for d in made)


def test_running_and_killed_runs_are_listed_as_such_never_as_results(tmp_path):
    with isolated_registry():

        @lab("optim", insights=["learning rate scheduling"])
        def quick(ctx: Lab) -> None:
            """A lab that records one check."""
            ctx.config(x=1)
            ctx.check("one is one", 1.0, direction="<=", bound=1.0)

        done = run_lab(quick.spec, scale="smoke", out=tmp_path)
        killed = run_lab(quick.spec, scale="smoke", out=tmp_path)
        (killed.dir / "result.json").unlink()  # what a kill before the end leaves
        rows = {r.dir: r.status for r in list_runs(tmp_path, include_incomplete=True)}
        assert rows == {done.dir: "ok", killed.dir: "incomplete"}
        with file_lock(killed.dir / ".lock"):  # a live process working on it
            [row] = [r for r in list_runs(tmp_path, include_incomplete=True) if r.dir == killed.dir]
            assert row.status == "running"
        assert [r.dir for r in list_runs(tmp_path)] == [done.dir]
        assert latest_runs(tmp_path)[("optim", "quick")].dir == done.dir


def test_atomic_write_leaves_old_or_new_never_half(tmp_path):
    """SIGKILL a process that rewrites a 4 MB file in a loop: the file is always whole."""
    target = tmp_path / "record.bin"
    atomic_write_bytes(target, b"a" * (4 << 20))
    script = textwrap.dedent(
        f"""
        from mlatlas.core.fileio import atomic_write_bytes
        i = 0
        while True:
            atomic_write_bytes({str(target)!r}, bytes([98 + i % 2]) * (4 << 20))
            i += 1
        """
    )
    for delay in (0.05, 0.13, 0.31):
        proc = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(delay + 0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = target.read_bytes()
        assert len(data) == 4 << 20 and data == data[:1] * len(data)


def test_atomic_open_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"], "no temporary file left"


def test_result_json_is_the_last_file_written(tmp_path):
    """A run folder is a result exactly when result.json exists, and it loads whole."""
    run = run_lab(get_lab("optim", "adam_l2_vs_adamw"), scale="smoke", out=tmp_path)
    files = {p.name: p.stat().st_mtime_ns for p in run.dir.iterdir() if p.is_file()}
    assert max(files, key=files.get) == "result.json"
    assert RunRecord.load(run.dir).claims == run.claims
    assert not list(run.dir.glob(".*.tmp")) and not (run.dir / "checkpoints" / "resume").exists()


def test_a_corrupted_dataset_file_stops_a_run_with_one_line_and_exit_2(tmp_path):
    """A lab that meets a corrupted file in MLATLAS_DATA: exit 2, one line naming the file,
    the expected and actual sha256 and what to do; no traceback and no run folder left. A
    fresh process, so that no dataset already decoded in memory hides the file."""
    import shutil

    from conftest import require_data

    require_data("mnist")
    src = Path(os.environ["MLATLAS_DATA"].split(os.pathsep)[0]) / "mnist"
    data = tmp_path / "data" / "mnist"
    shutil.copytree(src, data)
    bad = data / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(bad.read_bytes())
    raw[100] ^= 0xFF
    bad.write_bytes(bytes(raw))
    env = {
        **os.environ,
        "MLATLAS_DATA": str(tmp_path / "data"),
        "MLATLAS_CACHE": str(tmp_path / "cache"),
        "MLATLAS_PROGRESS": "0",
    }
    args = ["cnn", "lenet_mnist", "--scale", "smoke", "--set", "dataset=mnist"]
    done = subprocess.run(
        [sys.executable, "-m", "mlatlas", "run", *args, "--out", str(tmp_path / "r")],
        env=env,
        capture_output=True,
        text=True,
    )
    err = done.stderr.strip()
    assert done.returncode == 2, (done.stdout[-1000:], err[-1000:])
    assert len(err.splitlines()) == 1 and err.startswith("mlatlas: error:"), err
    assert "t10k-labels-idx1-ubyte.gz" in err and "sha256" in err and "Traceback" not in err
    assert not list((tmp_path / "r").glob("*/*/*/run.json"))
