"""Run a grid of experiments, configs × datasets × β × seeds, each through `run.py`.

    python sweep.py sweeps/quick.json
    python sweep.py --configs echo.json vae.json --betas 0.5 1 2 --datasets binary_mnist --seeds 0 1

Every run gets `run.py`'s default results name, <config>_<dataset>_beta<β>_seed<seed>, so a
sweep is idempotent: runs whose results exist are skipped, and re-running an interrupted
sweep runs only what is missing, resuming interrupted runs from their last checkpoint. Each run is a separate `run.py` process, its output
in <results-dir>/<name>.log; one line per run says done / skipped / failed with its test
rate, distortion and -ELBO in nats per example. `--dry-run` prints the plan,
`--print-commands` only the `run.py` commands (one per line, for a cluster scheduler).
Exit status: 0 if every run is done or skipped, 1 if any failed, 2 for an invalid sweep
(nothing runs), 130 / 143 when interrupted by SIGINT / SIGTERM, which stop the runs too.
"""

from __future__ import annotations

from model_utils.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from model_utils.checkpoints import checkpoint_dir, checkpointed_epochs
from model_utils.config import ConfigError
from model_utils.results import ResultsError, load_results, result_paths
from model_utils.run_options import FIELDS, RunOptions, add_run_flags, integer, non_negative_beta, positive_int
from model_utils.sweeps import NOT_RUN_ARGS, SweepError, make_grid, read_sweep_file
from run import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, default_filename, raise_on_signals, resolve_config

RUN_SCRIPT = Path(__file__).resolve().parent / "run.py"
EXIT_FAILED, EXIT_USAGE = 1, 2
SWEEP_VERBOSITY = 2  # one line per epoch in the run logs, instead of progress bars


@dataclass(frozen=True)
class PlannedRun:
    options: RunOptions
    name: str
    pickle_path: Path

    @property
    def log_path(self) -> Path:
        return self.pickle_path.with_suffix(".log")

    def exists(self) -> bool:
        return self.pickle_path.exists()

    def checkpointed_epoch(self) -> int | None:
        """The epoch an interrupted run would resume from, if it has a checkpoint."""
        epochs = checkpointed_epochs(checkpoint_dir(self.options.results_dir, self.name))
        return epochs[-1] if epochs else None

    def state(self) -> str:
        if self.exists():
            return "exists"
        epoch = self.checkpointed_epoch()
        return "missing" if epoch is None else f"resumes from epoch {epoch}"

    def command(self) -> list[str]:
        """The `run.py` command of this run, as it can be typed from the current directory."""
        return ["python", os.path.relpath(RUN_SCRIPT), *self.options.to_argv()]


# ---- the plan ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run a grid of configs × datasets × β × seeds through run.py (rates in nats per example).",
    )
    parser.add_argument("sweep_file", nargs="?", help="a JSON sweep file (see sweeps/); flags override its keys")
    parser.add_argument("--configs", nargs="+", help="config names or paths")
    parser.add_argument("--betas", nargs="+", type=non_negative_beta, help="β values")
    parser.add_argument("--datasets", nargs="+", help="dataset names (default: binary_mnist)")
    parser.add_argument("--seeds", nargs="+", type=integer, help="seeds (default: 0)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="runs at a time, each with CPUs/N threads")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
    mode.add_argument("--print-commands", action="store_true", help="print only the run.py commands")
    run_flags = parser.add_argument_group("run.py options, for every run (override the file's run_args)")
    add_run_flags(run_flags, [name for name in FIELDS if name not in NOT_RUN_ARGS], suppress_defaults=True)
    return parser.parse_args(argv)


def grid_entries(args: argparse.Namespace) -> tuple[dict, str]:
    """The sweep file's entries with the command line's overrides, and a name for messages."""
    entries = read_sweep_file(args.sweep_file) if args.sweep_file else {}
    source = args.sweep_file or "command line"
    for key in ("configs", "betas", "datasets", "seeds"):
        if getattr(args, key) is not None:
            entries[key] = getattr(args, key)
    run_args = entries.get("run_args", {})
    if isinstance(run_args, dict):  # otherwise make_grid reports it
        overrides = {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}
        entries["run_args"] = {"verbose": SWEEP_VERBOSITY, **run_args, **overrides}
    return entries, source


def plan(entries: dict, source: str, jobs: int = 1) -> list[PlannedRun]:
    """The runs of the grid with their results names; SweepError if the grid is invalid or
    two runs would share a name. With several jobs, each run gets its share of the CPUs."""
    grid = make_grid(entries, source)
    threads = max(1, len(os.sched_getaffinity(0)) // jobs) if jobs > 1 else None
    runs: dict[str, PlannedRun] = {}
    for options in grid.expand():
        if threads is not None and options.threads is None:
            options = replace(options, threads=threads)
        try:
            name = default_filename(options, resolve_config(options))
        except ConfigError as error:
            raise SweepError(f"{source}: {error}") from None
        if name in runs:
            raise SweepError(
                f"{source}: configs {runs[name].options.config!r} and {options.config!r} give the same results "
                f"name {name!r}; give the config files different names"
            )
        runs[name] = PlannedRun(options, name, result_paths(options.results_dir, name)[0])
    return list(runs.values())


# ---- running ----------------------------------------------------------------------------


def scores_text(path: Path) -> str:
    """'rate R, distortion D, -ELBO E nats per example' from a results pickle."""
    results = load_results(path)
    return (
        f"rate {results['test_rate']:.3f}, distortion {results['test_distortion']:.3f}, "
        f"-ELBO {-results['test_elbo']:.3f} nats per example"
    )


def last_error(log: Path) -> str:
    """The last line of a run's log that says what went wrong."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(empty log)"])[-1]


class Runner:
    """Runs planned runs as `run.py` processes, at most `jobs` at a time, printing one line
    per run as it ends."""

    def __init__(self, total: int):
        self.total = total
        self.finished = 0
        self.lock = threading.Lock()
        self.processes: set[subprocess.Popen] = set()
        self.stopping = False

    def report(self, status: str, run: PlannedRun, detail: str) -> None:
        with self.lock:
            self.finished += 1
            width = len(str(self.total))
            print(f"[{self.finished:>{width}}/{self.total}] {status:<7} {run.name}: {detail}", flush=True)

    def skip(self, run: PlannedRun) -> str:
        try:
            detail = f"{scores_text(run.pickle_path)} (results exist)"
        except ResultsError as error:
            detail = f"results exist but cannot be read: {error}"
        self.report("skipped", run, detail)
        return "skipped"

    def execute(self, run: PlannedRun) -> str:
        if self.stopping:
            return "not started"
        run.log_path.parent.mkdir(parents=True, exist_ok=True)
        resumed = run.checkpointed_epoch()
        start = time.perf_counter()
        with open(run.log_path, "a" if resumed else "w") as log:
            process = subprocess.Popen([sys.executable, str(RUN_SCRIPT), *run.options.to_argv()], stdout=log, stderr=subprocess.STDOUT)
            with self.lock:
                self.processes.add(process)
                if self.stopping:  # stop() came between the check above and the start
                    process.terminate()
            status = process.wait()
            with self.lock:
                self.processes.discard(process)
        seconds = time.perf_counter() - start
        if self.stopping:
            return "interrupted"
        if status == 0:
            try:
                how = f"resumed from epoch {resumed}, " if resumed else ""
                self.report("done", run, f"{scores_text(run.pickle_path)} ({how}{seconds:.0f} s)")
                return "done"
            except ResultsError as error:
                detail = f"exit 0, but {error}"
        else:
            detail = f"exit {status}: {last_error(run.log_path)}"
        self.report("failed", run, f"{detail} (log: {run.log_path})")
        return "failed"

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for process in self.processes:
                process.terminate()


def run_all(runs: list[PlannedRun], jobs: int) -> dict[str, int]:
    """Run every planned run that has no results yet; the count of each outcome."""
    runner = Runner(len(runs))
    outcomes = [runner.skip(run) for run in runs if run.exists()]
    pending = [run for run in runs if not run.exists()]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(runner.execute, run) for run in pending]
        try:
            outcomes += [future.result() for future in futures]
        except (KeyboardInterrupt, Terminated):
            runner.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return {outcome: outcomes.count(outcome) for outcome in set(outcomes)}


# ---- main -------------------------------------------------------------------------------


def print_plan(runs: list[PlannedRun]) -> None:
    width = len(str(len(runs)))
    for index, run in enumerate(runs, 1):
        print(f"[{index:>{width}}/{len(runs)}] {run.name}  {run.state()}  {shlex.join(run.command())}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_signals()
    try:
        entries, source = grid_entries(args)
        runs = plan(entries, source, args.jobs)
    except SweepError as error:
        print(f"error: sweep {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_commands:
        for run in runs:
            print(shlex.join(run.command()))
        return 0
    if args.dry_run:
        print_plan(runs)
        return 0
    missing = sum(not run.exists() for run in runs)
    print(f"sweep: {len(runs)} runs, {len(runs) - missing} with results, {missing} to run, {args.jobs} at a time; "
          f"logs in {Path(runs[0].options.results_dir)}/<name>.log", flush=True)
    start = time.perf_counter()
    try:
        counts = run_all(runs, args.jobs)
    except (KeyboardInterrupt, Terminated) as interruption:
        print("sweep interrupted; its runs were stopped at their last checkpoint: run the same command again to "
              "resume them and run what is missing", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(interruption, Terminated) else EXIT_INTERRUPTED
    summary = ", ".join(f"{counts[k]} {k}" for k in ("done", "skipped", "failed") if counts.get(k))
    print(f"sweep: {summary} in {time.perf_counter() - start:.0f} s", flush=True)
    return EXIT_FAILED if counts.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
