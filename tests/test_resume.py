"""Runs that survive a kill: SIGKILL a lab at several points, resume it, and get the numbers
of an uninterrupted run; atomic records; incomplete runs listed, never read as results;
divergence recorded with its step, last finite loss and checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_data
from torch import nn

from mlatlas.core import resume
from mlatlas.core.fileio import append_jsonl, read_jsonl
from mlatlas.core.lab import Lab, isolated_registry, lab
from mlatlas.core.record import RunRecord
from mlatlas.core.runner import find_incomplete, list_runs, resume_run, run_lab
from mlatlas.core.train import fit


def _env() -> dict[str, str]:
    """The test session's environment (data folder, private cache), checkpointing every step."""
    return {**os.environ, "MLATLAS_CHECKPOINT_EVERY": "0", "MLATLAS_PROGRESS": "0"}


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mlatlas", *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_dir(out: Path) -> Path | None:
    found = [p.parent for p in out.glob("*/*/*/run.json")]
    return found[0] if found else None


def _kill_when(proc: subprocess.Popen, out: Path, reached) -> Path:
    """SIGKILL `proc` as soon as its journal's progress satisfies `reached(progress)`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        d = _run_dir(out)
        if d is not None:
            prog = resume.Journal(d, 0.0).progress()
            if prog is not None and prog["step"] is not None and reached(prog):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return d
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill point: {proc.stderr.read()[-2000:]}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("kill point not reached in 120 s")


def _same_numbers(a: RunRecord, b: RunRecord) -> None:
    assert a.status == b.status == "ok", (a.error, b.error)
    assert a.claims == b.claims
    assert _without_run_ids(a.metrics) == _without_run_ids(b.metrics)
    assert a.tables == b.tables
    assert a.divergences == b.divergences


def _without_run_ids(metrics: dict) -> dict:
    """The metrics without the folder name of the run that trained shared models (each run
    has its own timestamped folder; the key and the weights are compared)."""
    shared = metrics.get("shared_models")
    if isinstance(shared, dict):
        metrics = {
            **metrics,
            "shared_models": {k: v for k, v in shared.items() if k != "trained_by"},
        }
    return metrics


def _metrics_without_time(d: Path) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k != "time_s"} for row in read_jsonl(d / "metrics.jsonl")
    ]


KILL_POINTS = {
    "first checkpoint of the first fit": lambda p: p["fit"] == 0 and p["step"] >= 1,
    "mid-way through a later fit": lambda p: p["fit"] >= 1 and not p["done"] and p["step"] >= 3,
    "after a fit ended": lambda p: p["fit"] >= 1 and p["done"],
}


@pytest.mark.parametrize(
    ("topic", "name", "dataset"),
    [
        ("activations", "dead_units", None),
        ("cnn", "lenet_mnist", None),
        ("vae", "posterior_collapse", None),
        ("gan", "saturation", None),
        ("diffusion", "mnist_digits", None),
    ],
    ids=[
        "ensemble-mlp",
        "single-cnn",
        "vae-two-ensembles",
        "gan-alternating-updates",
        "diffusion-shared-unets",
    ],
)
def test_sigkill_then_resume_gives_the_uninterrupted_numbers(tmp_path, topic, name, dataset):
    """Ensemble labs with several fits (topic 13's: a VAE objective that draws its own
    binarization and eps, a warm-up read from the step; topic 14's: a discriminator fitted
    alone, then four GANs of two alternating updates per step, each copied from it, their z
    from the fit's generator and their evaluations kept in the fit; topic 15's: the U-Nets
    its labs share, written to the run tree's shared entry, a loss that draws t, ε and the
    dropped labels from the fit's generator, then sampling) and a single-model CNN lab: killed
    with SIGKILL at several points (one of them killed twice), each resumed run
    ends with the claims, metrics, tables and metrics.jsonl of an uninterrupted run with the
    same seed."""
    if dataset:
        require_data(dataset)
    args = ["run", topic, name, "--scale", "smoke"]
    ref_out = tmp_path / "ref"
    done = subprocess.run(
        [sys.executable, "-m", "mlatlas", *args, "--out", str(ref_out)],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ref = RunRecord.load(_run_dir(ref_out))
    points = dict(KILL_POINTS)
    if name in ("lenet_mnist", "mnist_digits"):  # one fit: kill it early and late
        points = {
            "first checkpoint": lambda p: p["step"] >= 1,
            "late in the fit": lambda p: p["step"] >= 0.6 * p["steps"] and not p["done"],
        }
    for i, (label, reached) in enumerate(points.items()):
        out = tmp_path / f"kill{i}"
        d = _kill_when(_start([*args, "--out", str(out)]), out, reached)
        assert not (d / "result.json").exists(), label
        listed = list_runs(out, include_incomplete=True)
        assert [r.status for r in listed] == ["incomplete"], label
        assert list_runs(out) == [], f"{label}: a killed run is never read as a result"
        if i == 0:  # kill the resumed run again before it finishes
            proc = _start(["resume", str(d)])
            first = resume.Journal(d, 0.0).progress()
            _kill_when(
                proc,
                out,
                lambda p, first=first: (p["fit"], p["step"]) > (first["fit"], first["step"]),
            )
        r = subprocess.run(
            [sys.executable, "-m", "mlatlas", "resume", str(d)],
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, f"{label}: {r.stderr[-2000:]}"
        got = RunRecord.load(d)
        _same_numbers(got, ref)
        assert got.resumed >= 1
        assert _metrics_without_time(d) == _metrics_without_time(ref.dir), label
        assert not (d / "checkpoints" / "resume").exists(), "resume checkpoints are removed"


# -- in-process pieces ----------------------------------------------------------------------


def _tiny_lab(steps_box: dict):
    @lab("optim", insights=["learning rate scheduling"])
    def tiny(ctx: Lab) -> None:
        """A tiny regression fitted twice, for resume tests."""
        cfg = ctx.config(steps=40, lr=0.05)
        c = ctx.claim("w moves", quantity="|w|", direction=">", margin=0.0)
        for rep in ctx.replicates(3):
            g = rep.generator("data")
            x = torch.randn(64, 3, generator=g)
            y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(64, generator=g)
            model = nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 1))  # dropout draws RNG too
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

            def batches(x=x, y=y):
                while True:
                    idx = torch.randint(0, 64, (16,))  # global RNG: restored on resume
                    yield x[idx], y[idx]

            res = fit(
                model,
                opt,
                lambda m, b: ((m(b[0]).squeeze(-1) - b[1]) ** 2).mean(),
                batches(),
                cfg.steps,
                ctx=ctx,
                desc=f"rep{rep.id}",
                log_every=5,
                evaluate=lambda s, m=model: float(m[1].weight.detach().norm()),
                eval_every=10,
            )
            steps_box.setdefault("evals", []).append(res.evals)
            c.add(rep.id, float(model[1].weight.detach().norm()))
            ctx.metric(f"final_loss_{rep.id}", float(res.final_loss))

    return tiny


class _Killed(BaseException):
    """Stands for SIGKILL in-process: nothing after the raise runs, no result is written."""


def test_resume_from_every_kill_point_in_process(tmp_path, monkeypatch):
    """The process dies right after checkpoint number k, for every k (mid-fit and at the end
    of each of three fits), then again after the next checkpoint of the resumed run: every
    resumed run gives the uninterrupted claims, metrics, evaluations and metrics.jsonl. The
    batches draw from the global torch RNG, so this fails unless RNG states are restored."""
    with isolated_registry():
        box: dict = {}
        spec = _tiny_lab(box).spec
        ref = run_lab(spec, scale="smoke", out=tmp_path / "ref", checkpoint_every=0.0)
        ref_evals = box.pop("evals")
        real_save = resume.Journal.save
        n_saves = 3 * 41  # 40 steps + the end, per fit
        for k in range(1, n_saves, 7):
            budget = {"left": k}

            def save(self, *a, budget=budget):
                real_save(self, *a)
                budget["left"] -= 1
                if budget["left"] == 0:
                    raise _Killed

            monkeypatch.setattr(resume.Journal, "save", save)
            out = tmp_path / f"k{k}"
            with pytest.raises(_Killed):
                run_lab(spec, scale="smoke", out=out, checkpoint_every=0.0)
            [d] = [p.parent for p in out.glob("*/*/*/run.json")]
            if k + 5 < n_saves:
                budget["left"] = 5  # die again, five checkpoints into the resumed run
                with pytest.raises(_Killed):
                    resume_run(d, checkpoint_every=0.0)
            monkeypatch.setattr(resume.Journal, "save", real_save)
            box.clear()
            got = resume_run(d, checkpoint_every=0.0)
            _same_numbers(got, ref)
            assert _metrics_without_time(d) == _metrics_without_time(ref.dir), k
            assert box["evals"] == ref_evals, f"evaluations restored with their fits (k={k})"


def test_resume_restores_finished_fits_instead_of_training_them(tmp_path, monkeypatch):
    with isolated_registry():
        spec = _tiny_lab({}).spec
        monkeypatch.setattr(resume.Journal, "finish", lambda self: None)  # keep checkpoints
        run = run_lab(spec, scale="smoke", out=tmp_path, checkpoint_every=0.0)
        (run.dir / "result.json").unlink()
        (run.dir / "checkpoints" / "resume" / "fit-0002.pt").unlink()  # killed in fit 2
        calls = []
        real = resume.Journal.load
        monkeypatch.setattr(
            resume.Journal, "load", lambda self, k, *a: calls.append(k) or real(self, k, *a)
        )
        resume_run(run.dir)
        assert calls == [0, 1], "fits 0 and 1 restored from their checkpoints, fit 2 trained"


def test_resume_refuses_a_run_that_replays_differently(tmp_path, monkeypatch):
    with isolated_registry():
        spec = _tiny_lab({}).spec
        monkeypatch.setattr(resume.Journal, "finish", lambda self: None)
        run = run_lab(spec, scale="smoke", out=tmp_path, checkpoint_every=0.0)
        (run.dir / "result.json").unlink()
        info = json.loads((run.dir / "run.json").read_text())
        info["seed"] = 1  # the replay now starts its first fit from other weights
        (run.dir / "run.json").write_text(json.dumps(info))
        with pytest.raises(resume.ResumeError, match="other weights"):
            resume_run(run.dir)


def test_resume_errors_are_clear(tmp_path):
    with pytest.raises(resume.ResumeError, match="not a folder"):
        resume_run(tmp_path / "nope")
    with pytest.raises(resume.ResumeError, match="not a run folder"):
        resume_run(tmp_path)
    with isolated_registry():
        run = run_lab(_tiny_lab({}).spec, scale="smoke", out=tmp_path)
    with pytest.raises(resume.ResumeError, match="complete"):
        resume_run(run.dir)


def test_find_incomplete_matches_scale_seed_and_settings(tmp_path, monkeypatch):
    with isolated_registry():
        spec = _tiny_lab({}).spec
        run = run_lab(spec, scale="smoke", out=tmp_path)
        (run.dir / "result.json").unlink()
        assert find_incomplete(tmp_path, spec, "smoke", 0, {}) == run.dir
        assert find_incomplete(tmp_path, spec, "smoke", 1, {}) is None
        assert find_incomplete(tmp_path, spec, "default", 0, {}) is None
        assert find_incomplete(tmp_path, spec, "smoke", 0, {"lr": 0.1}) is None
        [rec] = list_runs(tmp_path, include_incomplete=True)
        assert rec.status == "incomplete" and rec.progress
        assert list_runs(tmp_path) == []


def test_divergence_is_recorded_with_step_loss_and_checkpoint(tmp_path):
    """A single model whose loss overflows stops; the run records the step, the last finite
    loss and a checkpoint of the weights that produced the bad loss, and the claim fed the
    diverged run's NaN is inconclusive with the reason."""
    with isolated_registry():

        @lab("optim", insights=["learning rate scheduling"])
        def blowup(ctx: Lab) -> None:
            """Gradient descent with a step size far past 2 / L."""
            ctx.config(lr=5.0)
            torch.manual_seed(0)
            x = torch.randn(32, 4)
            model = nn.Linear(4, 1)
            opt = torch.optim.SGD(model.parameters(), lr=5.0)
            res = fit(
                model,
                opt,
                lambda m, _: (m(x) ** 2).mean() * 1e30,
                iter(lambda: None, 1),
                200,
                ctx=ctx,
            )
            ctx.metric("diverged", bool(res.diverged))
            ctx.metric("steps", res.steps)
            ctx.metric("diverged_at", int(res.diverged_at))
            ctx.metric("last_finite", float(res.last_finite_loss))
            c = ctx.claim("loss is small", quantity="loss", direction="<", margin=1.0)
            c.add(0, float(res.final_loss))

        run = run_lab(blowup.spec, scale="smoke", out=tmp_path)
    m = run.metrics
    assert m["diverged"] and m["steps"] == m["diverged_at"] and m["diverged_at"] > 1
    assert np.isfinite(m["last_finite"])
    [event] = run.divergences
    assert event["step"] == m["diverged_at"] and event["last_finite_loss"] == m["last_finite"]
    ck = run.dir / event["checkpoint"]
    assert ck.exists()
    from mlatlas.core.checkpoint import load_checkpoint

    tensors, state = load_checkpoint(ck)
    assert all(torch.isfinite(t).all() for t in tensors.values()), "the last finite weights"
    assert state["step"] == m["diverged_at"]
    [claim] = run.claims
    assert claim["verdict"] == "inconclusive" and "failed" in claim["reason"]


def test_torn_metrics_line_is_ignored(tmp_path):
    f = tmp_path / "metrics.jsonl"
    append_jsonl(f, {"step": 1})
    append_jsonl(f, {"step": 2})
    with open(f, "a") as h:
        h.write('{"step": 3, "lo')  # a kill mid-write
    assert read_jsonl(f) == [{"step": 1}, {"step": 2}]
    f.write_text('{"step": 1}\n{bad\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(f)


def test_evals_and_rng_round_trip():
    evals = [(10, np.array([1.5, np.nan])), (20, (3, 0.25, {"a": [1, 2]})), (30, float("inf"))]
    back = resume.decode_evals(resume.encode_evals(evals))
    assert back[0][0] == 10 and np.array_equal(back[0][1], evals[0][1], equal_nan=True)
    assert back[1:] == evals[1:]
    torch.manual_seed(3)
    np.random.seed(4)
    state = resume.capture_rng()
    a = (torch.rand(3), np.random.rand(3), np.random.randn(1))
    resume.restore_rng(state)
    b = (torch.rand(3), np.random.rand(3), np.random.randn(1))
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


def test_ensemble_member_divergence_is_recorded_and_the_others_train_on():
    from mlatlas.core.ensemble import Ensemble

    torch.manual_seed(0)
    x = torch.randn(32, 4)
    ens = Ensemble([nn.Linear(4, 1), nn.Linear(4, 1)])
    opt = torch.optim.SGD(ens.parameters(), lr=0.01)
    scale = torch.tensor([1.0, 1e30])  # member 1's loss overflows after one step
    res = fit(ens, opt, lambda m, _: (m(x) ** 2).mean((1, 2)) * scale, iter(lambda: 0, 1), 50)
    assert res.diverged.tolist() == [False, True]
    assert res.diverged_at[0] == 0 and res.diverged_at[1] >= 2
    assert np.isfinite(res.last_finite_loss).all()
    assert res.steps == 50 and np.isfinite(res.losses[:, 0]).all()


def test_a_full_disk_stops_checkpoints_not_the_run(tmp_path, monkeypatch):
    import errno

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(resume, "save_torch_state", full)
    with isolated_registry():
        run = run_lab(_tiny_lab({}).spec, scale="smoke", out=tmp_path, checkpoint_every=0.0)
    assert run.ok and run.claims
    assert any("No space left on device" in n for n in run.notes)


# -- noise inside a step, alternating updates, stateful sources ------------------------------


def _scratch_labs():
    """tests/resume_labs.py, registered afresh in this (isolated) registry."""
    import importlib

    import resume_labs

    return importlib.reload(resume_labs)


def _cli(args: list[str]) -> list[str]:
    import resume_labs

    return resume_labs.cli_command(*args)


@pytest.mark.parametrize("name", ["noisy_regression", "alternating_gan", "rollout_policy"])
def test_sigkill_then_resume_loops_that_draw_noise_alternate_or_roll_out(tmp_path, name):
    """A loss that samples Gaussian noise from the fit's generator, a GAN whose step runs two
    optimizers, and a policy trained on rollouts it collects in a stateful environment: each
    killed with SIGKILL mid-fit, in a later fit and after a fit ended, then resumed, ends
    with the claims, metrics and metrics.jsonl of an uninterrupted run."""
    args = ["run", "optim", name, "--scale", "smoke"]
    ref_out = tmp_path / "ref"
    done = subprocess.run(
        _cli([*args, "--out", str(ref_out)]), env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ref = RunRecord.load(_run_dir(ref_out))
    points = dict(KILL_POINTS)
    if name == "rollout_policy":  # one fit
        points = {
            "early": lambda p: p["step"] >= 2,
            "late": lambda p: p["step"] >= 0.6 * p["steps"] and not p["done"],
        }
    for i, (label, reached) in enumerate(points.items()):
        out = tmp_path / f"kill{i}"
        proc = subprocess.Popen(
            _cli([*args, "--out", str(out)]),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        d = _kill_when(proc, out, reached)
        assert not (d / "result.json").exists(), label
        r = subprocess.run(_cli(["resume", str(d)]), env=_env(), capture_output=True, text=True)
        assert r.returncode == 0, f"{label}: {r.stderr[-2000:]}"
        got = RunRecord.load(d)
        _same_numbers(got, ref)
        assert got.resumed >= 1, label
        assert _metrics_without_time(d) == _metrics_without_time(ref.dir), label


@pytest.mark.parametrize("restore_noise", [True, False], ids=["restored", "not-restored"])
def test_resumed_numbers_depend_on_restoring_the_step_noise(tmp_path, monkeypatch, restore_noise):
    """Killed mid-fit (in-process, right after a checkpoint), the noisy lab resumes to the
    uninterrupted numbers; with the fit's noise generator left at its start instead of
    restored, the same comparison fails. So the resume tests above can fail."""
    from mlatlas.core import fitting

    with isolated_registry():
        spec = _scratch_labs().noisy_regression.spec
        ref = run_lab(spec, scale="smoke", out=tmp_path / "ref", checkpoint_every=0.0)
        real_save, real_restore = resume.Journal.save, fitting.Checkpoints.restore
        budget = {"left": 60}  # mid-way through the first fit (150 steps)

        def save(self, *a):
            real_save(self, *a)
            budget["left"] -= 1
            if budget["left"] == 0:
                raise _Killed

        monkeypatch.setattr(resume.Journal, "save", save)
        out = tmp_path / "killed"
        with pytest.raises(_Killed):
            run_lab(spec, scale="smoke", out=out, checkpoint_every=0.0)
        monkeypatch.setattr(resume.Journal, "save", real_save)

        def forgetful(self, it, st, lab):
            st = real_restore(self, it, st, lab)
            if self.noise is not None and st.done:
                self.noise.manual_seed(self.noise.initial_seed())  # back to its first draw
            return st

        if not restore_noise:
            monkeypatch.setattr(fitting.Checkpoints, "restore", forgetful)
        [d] = [p.parent for p in out.glob("*/*/*/run.json")]
        got = resume_run(d, checkpoint_every=0.0)
        same = got.metrics == ref.metrics and got.claims == ref.claims
        assert same == restore_noise


def test_stateful_source_is_restored_not_replayed(tmp_path, monkeypatch):
    """A stateful batch source is not advanced on resume (its next() would act with the
    restored policy): its own state comes from the checkpoint."""
    with isolated_registry():
        labs = _scratch_labs()
        spec = labs.rollout_policy.spec
        monkeypatch.setattr(resume.Journal, "finish", lambda self: None)
        ref = run_lab(spec, scale="smoke", out=tmp_path, checkpoint_every=0.0)
        (ref.dir / "result.json").unlink()
        calls = []
        real_next = labs.Rollouts.__next__
        monkeypatch.setattr(labs.Rollouts, "__next__", lambda s: calls.append(1) or real_next(s))
        got = resume_run(ref.dir, checkpoint_every=0.0)
        assert calls == [] and got.metrics == ref.metrics and got.metrics["collected"] == 150


def test_alternating_updates_run_in_order_on_the_stepped_weights():
    """fit with (opt_a, opt_b), (loss_a, loss_b) equals the hand-written alternation: zero,
    loss, backward, step for a, then for b on the weights a just stepped."""
    torch.manual_seed(0)
    net = nn.ModuleDict({"a": nn.Linear(3, 3), "b": nn.Linear(3, 1)})
    twin = nn.ModuleDict({"a": nn.Linear(3, 3), "b": nn.Linear(3, 1)})
    twin.load_state_dict(net.state_dict())
    xs = [torch.randn(8, 3) for _ in range(5)]

    def la(m, x):
        return (m["b"](m["a"](x)) ** 2).mean()

    def lb(m, x):
        return ((m["b"](m["a"](x)) - 1) ** 2).mean()

    opts = [torch.optim.SGD(net[k].parameters(), lr=0.1) for k in "ab"]
    res = fit(net, opts, (la, lb), iter(xs), 5)
    ref_opts = [torch.optim.SGD(twin[k].parameters(), lr=0.1) for k in "ab"]
    ref_losses = []
    for x in xs:
        row = []
        for opt, loss in zip(ref_opts, (la, lb), strict=True):
            opt.zero_grad()
            value = loss(twin, x)
            value.backward()
            opt.step()
            row.append(float(value))
        ref_losses.append(row)
    assert res.losses.shape == (5, 2)
    np.testing.assert_allclose(res.losses, ref_losses, rtol=0, atol=0)
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="one loss function per optimizer"):
        fit(net, opts, (la,), iter(xs), 1)
