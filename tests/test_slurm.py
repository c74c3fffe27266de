"""sweep.py on Slurm: the `slurm` section and flags, `--status`, the refusal without Slurm,
and, on a real single-node Slurm (.ci/slurm-up.sh), a tiny sweep run as a job array, one of
whose tasks is cancelled mid-run, resubmitted alone, and resumed from its checkpoint.

The Slurm tests are skipped, with the reason, where no Slurm is running, unless
ECHO_DATA_DIR is set (as in CI, whose .ci/run starts Slurm): then a missing Slurm fails them.
Their runs are `run.py` processes started by Slurm, which see no monkeypatched data: they
train on 200 real binary-MNIST images from $ECHO_DATA_DIR (or ../shared/data).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sweep
from analysis.grid import make_grid, read_sweep_file
from analysis.slurm import SlurmResources
from experiment.results import load_results, save_pickle
from support import REPO, SHARED, TINY, fake_results

WAIT = 300  # seconds a job array may take, at most


# ---- the slurm section and flags --------------------------------------------------------------


def _sweep_file(tmp_path, **entries) -> str:
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"configs": ["echo.json"], "betas": [1], "run_args": {"results_dir": str(tmp_path / "results")},
                                **entries}))
    return str(path)


def test_a_slurm_section_gives_the_defaults_and_flags_override_it(tmp_path):
    path = _sweep_file(tmp_path, slurm={"partition": "gpu", "time": "1-02:30:00", "cpus-per-task": 4, "mem": "16G"})
    assert make_grid(read_sweep_file(path), path).slurm == SlurmResources("gpu", (24 + 2) * 60 + 30, 4, None, "16G")
    args = sweep.parse_args([path, "--slurm", "--time", "90", "--gpus-per-task", "1", "--cpus-per-task", "8"])
    entries, source = sweep.grid_entries(args)
    assert make_grid(entries, source).slurm == SlurmResources("gpu", 90, 8, 1, "16G")
    assert make_grid(read_sweep_file(_sweep_file(tmp_path)), "grid").slurm == SlurmResources()


BAD_SECTIONS = {
    "not an object": (["gpu"], "grid.json: slurm: expected an object"),
    "unknown key": ({"partion": "gpu"}, "grid.json: slurm.partion: unknown key; expected one of: partition, time,"),
    "bad time": ({"time": "4h"}, "grid.json: slurm.time: expected a time limit [D-]HH:MM:SS or a number of minutes, got '4h'"),
    "bad seconds": ({"time": "01:00:75"}, "grid.json: slurm.time: expected a time limit"),
    "zero cpus": ({"cpus_per_task": 0}, "grid.json: slurm.cpus_per_task: expected a positive integer, got 0"),
    "bad memory": ({"mem": "lots"}, "grid.json: slurm.mem: expected memory like 16G"),
}


@pytest.mark.parametrize("case", BAD_SECTIONS, ids=list(BAD_SECTIONS))
def test_a_bad_slurm_section_stops_the_sweep_with_one_line_naming_the_key(case, tmp_path, capsys):
    section, fragment = BAD_SECTIONS[case]
    assert sweep.main([_sweep_file(tmp_path, slurm=section), "--dry-run"]) == sweep.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and fragment in error


def test_slurm_flags_are_checked_and_need_slurm(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sweep.parse_args([_sweep_file(tmp_path), "--slurm", "--time", "soon"])
    assert "argument --time: expected a time limit [D-]HH:MM:SS" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.parse_args([_sweep_file(tmp_path), "--partition", "gpu"])
    assert "--partition is a Slurm resource: it needs --slurm" in capsys.readouterr().err


def test_without_slurm_the_submission_is_refused_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch
    assert sweep.main([_sweep_file(tmp_path), "--slurm"]) == sweep.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert error.splitlines() == [error] and error.startswith("error: slurm: Slurm is not reachable from here: no sbatch")
    assert "nothing was submitted" in error and not (tmp_path / "results").exists()


# ---- --status -----------------------------------------------------------------------------


def test_status_says_how_far_each_run_got_from_the_results_directory_alone(tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    save_pickle(results / "echo_binary_mnist_beta1_seed0.pickle", fake_results("echo", "binary_mnist", 1.0, 0, 20.0, 100.0))
    checkpoint = results / "echo_binary_mnist_beta2_seed0.checkpoint"
    checkpoint.mkdir()
    for epoch in (3, 4):
        (checkpoint / f"epoch-{epoch:04d}.state.pickle").write_bytes(b"")
    (checkpoint / "epoch-0005.weights.h5").write_bytes(b"")  # not committed: no state file
    files = sorted(results.rglob("*"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Slurm needed
    argv = ["--configs", "echo.json", "--betas", "1", "2", "3", "--epochs", "10", "--results-dir", str(results), "--status"]
    assert sweep.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        "[1/3] echo_binary_mnist_beta1_seed0  done",
        "[2/3] echo_binary_mnist_beta2_seed0  checkpointed at epoch 4 of 10",
        "[3/3] echo_binary_mnist_beta3_seed0  not started",
        f"status: 3 runs in {results}: 1 done, 1 checkpointed, 1 not started",
    ]
    assert sorted(results.rglob("*")) == files


# ---- a real Slurm ---------------------------------------------------------------------------


def _slurm_missing() -> str | None:
    """Why no Slurm can run jobs here, or None when one can."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm here: sinfo/sbatch are not on the PATH (start one with .ci/slurm-up.sh)"
    try:
        nodes = subprocess.run(["sinfo", "--noheader", "--states=idle,mixed,allocated", "--format=%n"],
                               capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "Slurm is not responding: sinfo took more than 30 s"
    if nodes.returncode != 0:
        return f"Slurm is not responding: sinfo: {nodes.stderr.strip()}"
    if not nodes.stdout.split():
        return "Slurm has no node that takes jobs (sinfo lists none idle, mixed or allocated)"
    return None


@pytest.fixture
def slurm_sweep(tmp_path):
    """The command of a 2-run tiny sweep (β 1 and 2) to submit with `extra` flags, and the
    environment it runs in; skips or fails (see the module) when no Slurm is running."""
    reason = _slurm_missing()
    if reason is not None:
        if os.environ.get("ECHO_DATA_DIR"):
            pytest.fail(f"{reason}; ECHO_DATA_DIR is set (as in CI, whose .ci/run starts Slurm)")
        pytest.skip(reason)
    data = Path(os.environ.get("ECHO_DATA_DIR") or SHARED / "data").resolve()
    if not (data / "binarized_mnist").is_dir():
        pytest.skip(f"no binary MNIST in {data}: set ECHO_DATA_DIR")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    results = tmp_path / "results"

    def command(*extra: str) -> list[str]:
        return [sys.executable, "sweep.py", "--configs", str(config), "--betas", "1", "2", "--train-size", "200",
                "--test-size", "200", "--results-dir", str(results), *extra]

    return command, results, {**os.environ, "ECHO_DATA_DIR": str(data)}


def _sweep(command: list[str], env: dict) -> subprocess.CompletedProcess:
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stdout + finished.stderr[-3000:]
    return finished


def _submitted(stdout: str) -> tuple[str, dict[str, str]]:
    """The job id and {run name: Slurm task id} of `sweep.py --slurm`'s output."""
    job = re.search(r"^slurm: submitted job (\d+)", stdout, re.MULTILINE)
    assert job, stdout
    tasks = dict(re.findall(rf"^  ({job[1]}(?:_\d+)?)  (\S+)", stdout, re.MULTILINE))
    return job[1], {name: task for task, name in tasks.items()}


def _in_queue(job: str) -> list[str]:
    listing = subprocess.run(["squeue", "--me", "--noheader", "--array", "--format=%i"], capture_output=True, text=True,
                             timeout=30, check=True)
    return [task for task in listing.stdout.split() if task == job or task.startswith(f"{job}_")]


def _wait_for(job: str) -> None:
    deadline = time.monotonic() + WAIT
    while _in_queue(job):
        assert time.monotonic() < deadline, f"job {job} still in the queue after {WAIT} s"
        time.sleep(0.5)


def _scores(path: Path) -> tuple[float, float]:
    results = load_results(path)
    return results["test_rate"], results["test_distortion"]


def test_a_tiny_sweep_runs_as_one_job_array_with_the_results_of_a_local_run(slurm_sweep, tmp_path, capsys):
    command, results, env = slurm_sweep
    submitted = _sweep(command("--epochs", "2", "--slurm", "--time", "00:10:00"), env)
    job, tasks = _submitted(submitted.stdout)
    names = ["tiny_binary_mnist_beta1_seed0", "tiny_binary_mnist_beta2_seed0"]
    assert tasks == {names[0]: f"{job}_0", names[1]: f"{job}_1"}, submitted.stdout
    assert f"Slurm's log of each task in {results / 'slurm'}/<task>_0_log.out" in submitted.stdout
    _wait_for(job)
    for name in names:
        rate, distortion = _scores(results / f"{name}.pickle")
        assert math.isfinite(rate) and math.isfinite(distortion) and distortion > 0
        assert "Job completed successfully" in (results / "slurm" / f"{tasks[name]}_0_log.out").read_text()

    # The same run.py command, run here, gives the same scores.
    assert sweep.main(command("--epochs", "2", "--print-commands")[2:]) == 0
    printed = capsys.readouterr().out.splitlines()
    local = shlex.split(printed[1])[2:] + ["--results-dir", str(tmp_path / "local")]
    subprocess.run([sys.executable, "run.py", *local], cwd=REPO, env=env, capture_output=True, timeout=300, check=True)
    assert _scores(tmp_path / "local" / f"{names[1]}.pickle") == _scores(results / f"{names[1]}.pickle")

    again = _sweep(command("--epochs", "2", "--slurm"), env)
    assert "2 with results, 0 pending or running in Slurm, 0 submitted" in again.stdout
    assert "slurm: nothing to submit" in again.stdout


def test_a_cancelled_task_is_resubmitted_alone_and_resumes_from_its_checkpoint(slurm_sweep, capsys):
    command, results, env = slurm_sweep
    submit = command("--epochs", "20", "--slurm")
    job, tasks = _submitted(_sweep(submit, env).stdout)
    killed = "tiny_binary_mnist_beta2_seed0"
    checkpoint = results / f"{killed}.checkpoint"
    deadline = time.monotonic() + WAIT
    while not list(checkpoint.glob("*.state.pickle")):
        assert _in_queue(job) and time.monotonic() < deadline, "the task ended before its first checkpoint"
        time.sleep(0.1)
    subprocess.run(["scancel", tasks[killed]], check=True, timeout=30)
    _wait_for(job)
    assert (results / "tiny_binary_mnist_beta1_seed0.pickle").exists()
    assert not (results / f"{killed}.pickle").exists()
    assert sweep.main(command("--epochs", "20", "--status")[2:]) == 0
    status = capsys.readouterr().out
    epoch = int(re.search(rf"{killed}  checkpointed at epoch (\d+) of 20", status)[1])
    assert "status: 2 runs in " in status and ": 1 done, 1 checkpointed, 0 not started" in status

    again = _sweep(submit, env).stdout
    assert "2 runs, 1 with results, 0 pending or running in Slurm, 1 submitted" in again
    job, tasks = _submitted(again)
    assert list(tasks) == [killed] and f"  (resumes from epoch {epoch})" in again
    _wait_for(job)
    rate, distortion = _scores(results / f"{killed}.pickle")
    assert math.isfinite(rate) and math.isfinite(distortion)
    log = (results / f"{killed}.log").read_text()
    assert f"resuming {killed} from epoch {epoch} of 20" in log
    assert len(load_results(results / f"{killed}.pickle")["loss"]) == 20
