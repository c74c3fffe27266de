"""sweep.py and its sweep files: validation, naming, skipping, the plan, parallel runs with
failures, and one tiny real sweep followed by its report."""

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import sweep
from analysis import plan
from experiment.results import load_results, save_pickle
from experiment.options import parse_run_options
from analysis.grid import SweepError, make_grid, read_sweep_file
from support import REPO, TINY, fake_results

SWEEPS = REPO / "sweeps"


def _sweep_file(tmp_path, **entries):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(entries))
    return str(path)


def _plan(tmp_path, **entries):
    entries.setdefault("run_args", {"results_dir": str(tmp_path / "results")})
    return sweep.plan(entries, "test grid")


# ---- sweep files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["quick.json", "paper.json"])
def test_the_published_sweep_files_are_valid(name):
    grid = make_grid(read_sweep_file(SWEEPS / name), name)
    assert len(grid.configs) >= 3 and len(grid.betas) >= 3
    assert set(grid.run_args) >= {"epochs"}


def test_the_paper_grid_covers_every_config_and_dataset_on_a_log_spaced_beta_grid():
    grid = make_grid(read_sweep_file(SWEEPS / "paper.json"), "paper.json")
    # Every config but the one trained to a fixed rate, which a sweep over β does not move.
    assert sorted(grid.configs) == sorted(path.name for path in (REPO / "configs").glob("*.json")
                                          if path.name != "echo_target20.json")
    assert set(grid.datasets) == {"binary_mnist", "omniglot", "fmnist"}
    assert grid.run_args["epochs"] == 200
    betas = sorted(grid.betas)
    assert betas[0] == pytest.approx(0.1, rel=0.2) and betas[-1] == pytest.approx(10, rel=0.2) and 1.0 in betas
    ratios = [b / a for a, b in zip(betas, betas[1:])]
    assert max(ratios) / min(ratios) < 1.25  # log-spaced up to rounding


BAD_FILES = {
    "unknown key": ({"configs": ["echo.json"], "betas": [1], "epochs": 3}, "grid.json: epochs: unknown key"),
    "unknown config": ({"configs": ["echo.json", "nope.json"], "betas": [1]}, "configs[1]: nope.json: no such config file"),
    "beta not a number": ({"configs": ["echo.json"], "betas": [1, "two"]}, "betas[1]: expected a finite number >= 0, got 'two'"),
    "negative beta": ({"configs": ["echo.json"], "betas": [-1]}, "betas[0]: expected a finite number >= 0"),
    "beta listed twice": ({"configs": ["echo.json"], "betas": [1, 1.0]}, "betas[1]: 1.0 is listed twice"),
    "no betas": ({"configs": ["echo.json"]}, "grid.json: betas: is missing"),
    "empty configs": ({"configs": [], "betas": [1]}, "configs: expected a non-empty list"),
    "unknown dataset": ({"configs": ["echo.json"], "betas": [1], "datasets": ["cifar"]}, "datasets[0]: unknown dataset 'cifar'"),
    "seed not an integer": ({"configs": ["echo.json"], "betas": [1], "seeds": [0.5]}, "seeds[0]: expected an integer"),
    "unknown run_args key": ({"configs": ["echo.json"], "betas": [1], "run_args": {"epoch": 3}}, "run_args.epoch: unknown run.py option"),
    "bad run_args value": ({"configs": ["echo.json"], "betas": [1], "run_args": {"epochs": 0}}, "run_args.epochs: argument --epochs: must be a positive integer"),
    "run_args sets the grid": ({"configs": ["echo.json"], "betas": [1], "run_args": {"seed": 3}}, "run_args.seed: is set by seeds"),
    "run_args boolean": ({"configs": ["echo.json"], "betas": [1], "run_args": {"validate": "yes"}}, "run_args.validate: expected true or false"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_sweep_file_stops_with_one_line_before_any_run(case, tmp_path, capsys, monkeypatch):
    entries, fragment = BAD_FILES[case]
    entries.setdefault("run_args", {})
    if isinstance(entries["run_args"], dict):
        entries["run_args"].setdefault("results_dir", str(tmp_path / "results"))
    monkeypatch.setattr(subprocess, "Popen", _no_process)
    assert sweep.main([_sweep_file(tmp_path, **entries)]) == sweep.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: sweep ") and fragment in error
    assert not (tmp_path / "results").exists()


def test_a_file_that_is_not_json_is_named(tmp_path, capsys):
    path = tmp_path / "grid.json"
    path.write_text('{"configs": ["echo.json"],\n "betas": [1,]}')
    assert sweep.main([str(path)]) == sweep.EXIT_USAGE
    assert f"{path}: line 2 column" in capsys.readouterr().err


def _no_process(*args, **kwargs):
    raise AssertionError("no run may start")


# ---- the plan -----------------------------------------------------------------------------


def test_runs_get_run_py_default_names_in_grid_order(tmp_path):
    runs = _plan(tmp_path, configs=["echo.json", "vae"], betas=[0.5, 2], datasets=["binary_mnist", "omni"], seeds=[0, 1])
    assert len(runs) == 16
    assert [run.name for run in runs[:5]] == [
        "echo_binary_mnist_beta0.5_seed0", "echo_binary_mnist_beta0.5_seed1",
        "echo_binary_mnist_beta2_seed0", "echo_binary_mnist_beta2_seed1",
        "echo_omniglot_beta0.5_seed0",  # the alias "omni" is named by its dataset
    ]
    assert runs[-1].name == "vae_omniglot_beta2_seed1"
    assert runs[-1].pickle_path == tmp_path / "results" / "vae_omniglot_beta2_seed1.pickle"


def test_each_command_parses_back_to_its_run(tmp_path):
    runs = _plan(tmp_path, configs=["echo.json"], betas=[0.1, 1], seeds=[3],
                 run_args={"results_dir": str(tmp_path), "epochs": 2, "train_size": 500, "validate": True})
    for run in runs:
        command = run.command()
        assert command[:2] == ["python", os.path.relpath(REPO / "run.py")]
        assert parse_run_options(command[2:]) == run.options
        assert run.options.epochs == 2 and run.options.validate and run.options.seed == 3


def test_command_line_options_override_the_file(tmp_path, capsys):
    path = _sweep_file(tmp_path, configs=["echo.json"], betas=[1], run_args={"epochs": 10, "train_size": 5000})
    assert sweep.main([path, "--epochs", "2", "--betas", "0.5", "--results-dir", str(tmp_path), "--print-commands"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    options = parse_run_options(shlex.split(line)[2:])
    assert (options.epochs, options.train_size, options.beta, options.results_dir) == (2, 5000, 0.5, str(tmp_path))


def test_two_configs_with_one_name_are_refused(tmp_path):
    other = tmp_path / "elsewhere" / "echo.json"
    other.parent.mkdir()
    other.write_text((REPO / "configs" / "echo.json").read_text())
    with pytest.raises(SweepError, match="give the same results name 'echo_binary_mnist_beta1_seed0'"):
        _plan(tmp_path, configs=["echo.json", str(other)], betas=[1])


def test_jobs_split_the_cpus_between_runs(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    runs = sweep.plan({"configs": ["echo.json"], "betas": [1, 2]}, "grid", jobs=2)
    assert all(run.options.threads == max(1, cpus // 2) for run in runs)
    assert all(run.options.threads is None for run in sweep.plan({"configs": ["echo.json"], "betas": [1]}, "grid"))


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    save_pickle(results / "vae_binary_mnist_beta1_seed0.pickle", fake_results("vae", "binary_mnist", 1.0, 0, 20.0, 100.0))
    monkeypatch.setattr(subprocess, "Popen", _no_process)
    assert sweep.main(["--configs", "echo.json", "vae.json", "--betas", "1", "--results-dir", str(results), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[1/2] echo_binary_mnist_beta1_seed0  missing  python ")
    assert lines[1].startswith("[2/2] vae_binary_mnist_beta1_seed0  exists  ")
    assert "--config vae.json --beta 1.0" in lines[1]
    assert sorted(p.name for p in results.iterdir()) == ["vae_binary_mnist_beta1_seed0.pickle"]


def test_the_plan_says_which_runs_will_resume_from_a_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "echo_binary_mnist_beta1_seed0.checkpoint"
    checkpoint.mkdir()
    for epoch in (3, 4):
        (checkpoint / f"epoch-{epoch:04d}.state.pickle").write_bytes(b"")
    (checkpoint / "epoch-0005.weights.h5").write_bytes(b"")  # not committed: no state file
    assert sweep.main(["--configs", "echo.json", "--betas", "1", "2", "--results-dir", str(tmp_path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "echo_binary_mnist_beta1_seed0  resumes from epoch 4  python " in lines[0]
    assert "echo_binary_mnist_beta2_seed0  missing  python " in lines[1]


# ---- running ----------------------------------------------------------------------------


def _outcomes(stdout: str) -> list[str]:
    """done / skipped / failed of each run line ("[k/n] outcome name: ...")."""
    return [line.split()[1] for line in stdout.splitlines() if re.match(r"\[ *\d+/\d+\] ", line)]

# Stands in for run.py: writes a results pickle under run.py's default name, except for
# seed 1, which fails like run.py does.
FAKE_RUN = textwrap.dedent("""
    import pickle, sys
    sys.path.insert(0, {repo!r})
    from experiment.options import parse_run_options
    options = parse_run_options(sys.argv[1:])
    if options.seed == 1:
        print("error: data: something is missing", file=sys.stderr)
        sys.exit(1)
    sys.path.insert(0, {tests!r})
    from support import fake_results
    from experiment.results import save_pickle
    from pathlib import Path
    stem = Path(options.config).stem
    name = f"{{stem}}_{{options.dataset}}_beta{{options.beta:g}}_seed{{options.seed}}"
    save_pickle(Path(options.results_dir) / f"{{name}}.pickle",
                fake_results(stem, options.dataset, options.beta, options.seed, 10.0 + options.beta, 90.0))
""")


@pytest.fixture
def fake_run_py(tmp_path, monkeypatch):
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUN.format(repo=str(REPO), tests=str(REPO / "tests")))
    monkeypatch.setattr(plan, "RUN_SCRIPT", script)
    return script


def test_a_failed_run_is_reported_the_others_go_on_and_the_status_says_so(tmp_path, capsys, fake_run_py):
    results = tmp_path / "results"
    argv = ["--configs", "echo.json", "--betas", "0.5", "2", "--seeds", "0", "1", "--jobs", "2", "--results-dir", str(results)]
    assert sweep.main(argv) == sweep.EXIT_FAILED
    lines = capsys.readouterr().out.splitlines()
    outcomes = {line.split()[2].rstrip(":"): line.split()[1] for line in lines[1:-1]}
    assert outcomes == {
        "echo_binary_mnist_beta0.5_seed0": "done", "echo_binary_mnist_beta2_seed0": "done",
        "echo_binary_mnist_beta0.5_seed1": "failed", "echo_binary_mnist_beta2_seed1": "failed",
    }
    done = next(line for line in lines if "beta2_seed0" in line)
    assert "rate 12.000, distortion 90.000, -ELBO 102.000 nats per example" in done
    failed = next(line for line in lines if "beta2_seed1" in line)
    assert "exit 1: error: data: something is missing" in failed
    assert lines[-1].startswith("sweep: 2 done, 2 failed")
    assert (results / "echo_binary_mnist_beta2_seed1.log").read_text().startswith("error: data")


def test_a_second_sweep_skips_finished_runs_and_runs_the_missing_ones(tmp_path, capsys, fake_run_py):
    results = tmp_path / "results"
    argv = ["--configs", "echo.json", "--betas", "0.5", "2", "--results-dir", str(results)]
    save_pickle(results / "echo_binary_mnist_beta2_seed0.pickle", fake_results("echo", "binary_mnist", 2.0, 0, 7.0, 80.0))
    assert sweep.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "1 with results, 1 to run" in lines[0]
    assert "skipped echo_binary_mnist_beta2_seed0: rate 7.000, distortion 80.000, -ELBO 87.000" in lines[1]
    assert "done    echo_binary_mnist_beta0.5_seed0: rate 10.500" in lines[2]
    assert sweep.main(argv) == 0
    assert _outcomes(capsys.readouterr().out) == ["skipped", "skipped"]


# ---- the real thing ---------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("ECHO_DATA_DIR"), reason="ECHO_DATA_DIR is not set")
def test_a_tiny_real_sweep_then_its_report(tmp_path):
    results = tmp_path / "results"
    command = [sys.executable, "sweep.py", "--configs", "echo.json", "vae.json", "--betas", "0.5", "2",
               "--train-size", "300", "--test-size", "200", "--epochs", "1", "--jobs", "2", "--results-dir", str(results)]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout + finished.stderr[-3000:]
    assert _outcomes(finished.stdout) == ["done"] * 4 and "nats per example" in finished.stdout
    pickles = sorted(results.glob("*.pickle"))
    assert [p.name for p in pickles] == [f"{c}_binary_mnist_beta{b}_seed0.pickle" for c in ("echo", "vae") for b in ("0.5", "2")]

    report = subprocess.run([sys.executable, "report.py", str(results)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    with open(results / "report" / "summary.csv") as stream:
        rows = {row["name"]: row for row in csv.DictReader(stream)}
    for path in pickles:
        saved = load_results(path)
        assert float(rows[path.stem]["test_rate"]) == saved["test_rate"]
        assert float(rows[path.stem]["test_elbo"]) == saved["test_elbo"]
    for figure in ("rate_distortion.png", "learning_curves.png"):
        assert (results / "report" / figure).stat().st_size > 10_000

    before = {path: path.read_bytes() for path in pickles}
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and _outcomes(again.stdout) == ["skipped"] * 4
    assert all(path.read_bytes() == content for path, content in before.items())


@pytest.mark.skipif(not os.environ.get("ECHO_DATA_DIR"), reason="ECHO_DATA_DIR is not set")
def test_sigterm_stops_the_sweep_and_its_runs_which_the_next_sweep_resumes(tmp_path):
    results = tmp_path / "results"
    command = [sys.executable, "sweep.py", "--configs", json.dumps(TINY), "--betas", "1", "--train-size", "1000",
               "--test-size", "100", "--results-dir", str(results)]
    sweep_process = subprocess.Popen([*command, "--epochs", "50"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = results / "inline_binary_mnist_beta1_seed0.checkpoint"
    deadline = time.monotonic() + 300
    while not list(checkpoint.glob("*.state.pickle")):
        assert sweep_process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    sweep_process.send_signal(signal.SIGTERM)
    _, stderr = sweep_process.communicate(timeout=60)
    assert sweep_process.returncode == 143 and "run the same command again" in stderr
    assert not (results / "inline_binary_mnist_beta1_seed0.pickle").exists()
    plan = subprocess.run([*command, "--epochs", "50", "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "inline_binary_mnist_beta1_seed0  resumes from epoch " in plan.stdout
