"""Data parallel across processes (gloo on the CPU): `fit` on W processes, each on 1/W of the
batch with gradients averaged, trains the same model as one process on the whole batch; a
lab runs unchanged under ``--nproc 2`` and only rank 0 writes its run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlatlas import cli
from mlatlas.architectures.transformers.models import GPT, GPTConfig
from mlatlas.cli import main
from mlatlas.core import distributed
from mlatlas.core.lab import ConfigError
from mlatlas.core.train import fit

REPO = Path(__file__).resolve().parents[1]
STEPS, BATCH, VOCAB, BLOCK = 20, 8, 20, 16
MLATLAS = [sys.executable, "-m", "mlatlas"]

# What one process trains on: a small GPT, AdamW with the char_gpt recipe's global-norm clip
# (it must see the averaged gradient), batches of BATCH windows from a seeded generator.
RECIPE = f"""
import torch
import torch.nn.functional as F
from torch import nn
from mlatlas.architectures.transformers.models import GPT, GPTConfig
from mlatlas.core.train import fit


def gpt_curve(batch={BATCH}, steps={STEPS}, dropout=0.0):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab={VOCAB}, block_size={BLOCK}, n_layer=2, n_head=2, n_embd=32,
                          dropout=dropout, kernel="torch"))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def clip(*_):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)

    opt.register_step_pre_hook(clip)
    g = torch.Generator().manual_seed(1)

    def batches():
        while True:
            x = torch.randint(0, {VOCAB}, (batch, {BLOCK} + 1), generator=g)
            yield x[:, :-1], x[:, 1:]

    def loss_fn(m, b):
        return F.cross_entropy(m(b[0]).reshape(-1, {VOCAB}), b[1].reshape(-1))

    res = fit(model, opt, loss_fn, batches(), steps)
    return model, res.losses
"""

WORKER = (
    RECIPE
    + """
import json, sys
import torch.distributed as dist
from mlatlas.core import distributed
from mlatlas.core.lab import ConfigError
from mlatlas.core.resume import ResumeError
from mlatlas.core.runner import resume_run

torch.set_num_threads(1)
out = sys.argv[1]
distributed.init("cpu")
r = distributed.rank()
report = {"rank": r, "world": distributed.world_size(), "backend": distributed.backend()}
_, losses = gpt_curve()
report["losses"] = losses.tolist()

try:  # a batch the ranks cannot split evenly
    gpt_curve(batch=7, steps=1)
except ConfigError as exc:
    report["odd_batch"] = str(exc)

model, _ = gpt_curve(steps=3, dropout=0.5)  # masks drawn per rank: weights stay identical
flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
gathered = [torch.empty_like(flat) for _ in range(report["world"])]
dist.all_gather(gathered, flat)
report["weights_equal"] = all(torch.equal(gathered[0], t) for t in gathered)
state = torch.get_rng_state()
states = [torch.empty_like(state) for _ in range(report["world"])]
dist.all_gather(states, state)
report["rng_equal"] = all(torch.equal(states[0], s) for s in states)

try:
    resume_run(out)
except ResumeError as exc:
    report["resume"] = str(exc)
with open(f"{out}/rank{r}.json", "w") as f:
    json.dump(report, f)
distributed.shutdown(0)
"""
)


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MLATLAS_PROGRESS="0")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _errors(stderr: str) -> str:
    """The workers' own tracebacks, not torchrun's summary of them."""
    return stderr.split("Traceback", 1)[-1][:4000] if "Traceback" in stderr else stderr[-4000:]


def _torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Run WORKER on 2 gloo processes; each writes what it saw to rank<r>.json."""
    d = tmp_path_factory.mktemp("ddp")
    script = d / "worker.py"
    script.write_text(WORKER)
    done = subprocess.run(
        [*_torchrun(), str(script), str(d)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, _errors(done.stderr)
    return [json.loads((d / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_process_curve_equals_one_process_curve(two_ranks):
    """Loss of `fit` at global batch 8 on 2 gloo processes (4 windows each, gradients averaged)
    equals one process at batch 8, step by step for 20 steps; tolerance 1e-5 absolute in
    float32 (the two sum the same numbers in a different order)."""
    scope: dict = {}
    exec(RECIPE, scope)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, one = scope["gpt_curve"]()
    finally:
        torch.set_num_threads(threads)
    for rep in two_ranks:
        assert (rep["world"], rep["backend"]) == (2, "gloo")
        np.testing.assert_allclose(rep["losses"], one, rtol=0, atol=1e-5)
    assert two_ranks[0]["losses"] == two_ranks[1]["losses"]  # every rank records the global one
    assert np.ptp(one) > 0.05  # the curve moves: the comparison is not of 20 equal numbers


def test_ranks_stay_identical_and_refuse_what_they_cannot_do(two_ranks):
    for rep in two_ranks:
        assert "a batch of 7 items does not split into 2 equal shards" in rep["odd_batch"]
        assert rep["weights_equal"] and rep["rng_equal"]  # also with dropout
        assert "resumes in one process" in rep["resume"]


def test_shard_takes_chunk_r_of_w_along_dim_0():
    x, y = torch.arange(12).view(6, 2), np.arange(6)
    got = distributed.shard({"x": x, "pair": (y, "tag")}, 1, 3)
    assert torch.equal(got["x"], x[2:4]) and got["pair"][1] == "tag"
    np.testing.assert_array_equal(got["pair"][0], y[2:4])
    with pytest.raises(ConfigError, match="batch of 6 items does not split into 4"):
        distributed.shard(x, 0, 4)
    with pytest.raises(ConfigError, match=r"first dimensions \[5, 6\]"):
        distributed.shard((x, torch.zeros(5)), 0, 2)


def test_one_process_fit_is_untouched_by_the_data_parallel_path():
    """Outside torchrun fit neither splits nor averages: the curve equals a plain loop's."""
    assert not distributed.active() and distributed.world_size() == 1
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab=VOCAB, block_size=BLOCK, n_layer=1, n_head=2, n_embd=16))
    ref = GPT(m.cfg)
    ref.load_state_dict(m.state_dict())
    x = torch.randint(0, VOCAB, (5, 4, BLOCK + 1), generator=torch.Generator().manual_seed(2))

    def loss_fn(model, b):
        return F.cross_entropy(model(b[:, :-1]).reshape(-1, VOCAB), b[:, 1:].reshape(-1))

    got = fit(m, torch.optim.SGD(m.parameters(), lr=0.1), loss_fn, iter(x), 5).losses
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    want = []
    for b in x:
        opt.zero_grad()
        loss = loss_fn(ref, b)
        loss.backward()
        opt.step()
        want.append(loss.item())
    np.testing.assert_allclose(got, want, rtol=0, atol=0)


def test_nproc_runs_a_lab_unchanged_and_only_rank_0_writes(tmp_path):
    """`mlatlas run ... --nproc 2` relaunches under torchrun: one run folder, a complete record
    that says it ran data-parallel, one metrics line per logged step, no file elsewhere."""
    work = tmp_path / "cwd"
    (work / "tmp").mkdir(parents=True)
    env = dict(_env(), TMPDIR=str(work / "tmp"))
    done = subprocess.run(
        [*MLATLAS, "run", "transformers", "char_gpt", "--scale", "smoke", "--nproc", "2"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, _errors(done.stderr)
    assert done.stdout.count("== transformers / char_gpt") == 1  # rank 1 prints nothing
    runs = [p for p in (work / "runs").glob("*/*/*") if p.is_dir()]
    assert len(runs) == 1
    run = runs[0]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "ok", result.get("error")
    assert any("data-parallel on 2 processes (gloo)" in n for n in result["notes"])
    assert json.loads((run / "run.json").read_text())["world_size"] == 2
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)) > 0  # one writer
    assert sorted(os.listdir(work)) == ["runs", "tmp"]
    # torchrun's launcher leaves an empty log folder; the workers leave nothing
    leftovers = [p for p in (work / "tmp").rglob("*") if not p.name.startswith("torchelastic_")]
    assert not [p for p in leftovers if p.is_file()]
    assert {p.name for p in run.iterdir()} <= {
        "run.json",
        "config.json",
        "metrics.jsonl",
        "result.json",
        "char_gpt.png",
        "char_gpt.svg",
        ".lock",
    }


def test_the_relaunched_command_has_no_nproc():
    argv = ["run", "7", "char_gpt", "--npro", "2", "--set", "steps=3", "--nproc=2", "--out", "r"]
    assert cli._without_nproc(argv) == ["run", "7", "char_gpt", "--set", "steps=3", "--out", "r"]


def test_nproc_refuses_resume_and_a_second_launcher(capsys, monkeypatch, tmp_path):
    code = main(["run", "transformers", "char_gpt", "--nproc", "2", "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--resume runs in one process" in err
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert distributed.launched() and distributed.world_size() == 3
    monkeypatch.setattr(cli.distributed, "init", lambda device: "")  # no process group here
    code = main(["run", "transformers", "char_gpt", "--nproc", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "torchrun sets the number" in err


FAILS_ON_ONE_RANK = """
import sys
import torch
from mlatlas.core import distributed
from mlatlas.core.lab import LabSpec
from mlatlas.core.runner import run_lab
from mlatlas.core.train import fit

torch.set_num_threads(1)
out = sys.argv[1]
distributed.init("cpu")


def train(ctx):
    ctx.config(steps=5)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, opt, lambda m, b: m(b).pow(2).mean(), (torch.ones(8, 4) for _ in range(5)), 5)


def fails_on_rank_0(ctx):
    if distributed.rank() == 0:
        raise RuntimeError("rank 0 alone fails, before its first collective")
    train(ctx)


for name, fn in (("first", fails_on_rank_0), ("second", train)):
    spec = LabSpec("transformers", name, fn, ("parallelizable sequence modeling",), name)
    run_lab(spec, scale="smoke", device="cpu", out=out, show_progress=False)
distributed.shutdown(0)
"""


def test_a_lab_failing_on_one_process_ends_the_run(tmp_path):
    """Rank 0 fails mid-lab while rank 1 waits in the lab's gradient all-reduce: rank 0 must
    not go on to the next lab (its collectives would pair with rank 1's stale ones); it leaves
    the group, rank 1's collective fails, and the run ends with an error within seconds."""
    script = tmp_path / "worker.py"
    script.write_text(FAILS_ON_ONE_RANK)
    done = subprocess.run(
        [*_torchrun(), str(script), str(tmp_path / "runs")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "rank 0 alone fails" in done.stderr
    (first,) = (tmp_path / "runs" / "transformers" / "first").iterdir()
    rec = json.loads((first / "result.json").read_text())
    assert rec["status"] == "error" and "rank 0 alone fails" in rec["error"]
    assert not (tmp_path / "runs" / "transformers" / "second").exists()
