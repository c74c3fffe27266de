"""Run a grid of experiments, configs × datasets × β × seeds, each through `run.py`.

    python sweep.py sweeps/quick.json
    python sweep.py --configs echo.json vae.json --betas 0.5 1 2 --datasets binary_mnist --seeds 0 1

Every run gets `run.py`'s default results name, <config>_<dataset>_beta<β>_seed<seed>, so a
sweep is idempotent: runs whose results exist are skipped, and re-running an interrupted
sweep runs only what is missing, resuming interrupted runs from their last checkpoint. Each run is a separate `run.py` process, its output
in <results-dir>/<name>.log; one line per run says done / skipped / failed with its test
rate, distortion and -ELBO in nats per example. `--dry-run` prints the plan,
`--print-commands` only the `run.py` commands (one per line, for a cluster scheduler).
`--slurm` submits the runs that are unfinished (no results, not already queued) to Slurm
as one job array and returns; `--status` says how far each run got, from the results
directory alone.
Exit status: 0 if every run is done or skipped (or submitted), 1 if any failed, 2 for an
invalid sweep or when Slurm cannot be reached or refuses the array (nothing runs), 130 /
143 when interrupted by SIGINT / SIGTERM, which stop the runs too.
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from analysis.grid import NOT_RUN_ARGS, SweepError, make_grid, read_sweep_file
from analysis.launch import run_all
from analysis.plan import CHECKPOINTED, DONE, NOT_STARTED, PlannedRun, plan
from analysis.slurm import RESOURCE_PARSERS, SlurmError, submit_unfinished
from experiment.errors import EXIT_INTERRUPTED, EXIT_TERMINATED
from experiment.options import FIELDS, add_run_flags, integer, non_negative_beta, positive_int
from experiment.signals import Terminated, raise_on_signals

EXIT_FAILED, EXIT_USAGE = 1, 2
SWEEP_VERBOSITY = 2  # one line per epoch in the run logs, instead of progress bars


# ---- the command line----------------------------------------------------------------------


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
    mode.add_argument("--slurm", action="store_true",
                      help="submit the unfinished runs to Slurm as one job array, and return")
    mode.add_argument("--status", action="store_true",
                      help="per run: done, checkpointed at epoch k, or not started (from the results directory)")
    slurm = parser.add_argument_group("Slurm resources of each task, with --slurm (override the file's slurm section)")
    for name, parse in RESOURCE_PARSERS.items():
        slurm.add_argument("--" + name.replace("_", "-"), dest=name, type=_flag_type(parse), default=argparse.SUPPRESS,
                           help=SLURM_HELP[name])
    run_flags = parser.add_argument_group("run.py options, for every run (override the file's run_args)")
    add_run_flags(run_flags, [name for name in FIELDS if name not in NOT_RUN_ARGS], suppress_defaults=True)
    args = parser.parse_args(argv)
    given = [flag for flag in RESOURCE_PARSERS if hasattr(args, flag)]
    if given and not args.slurm:
        parser.error(f"--{given[0].replace('_', '-')} is a Slurm resource: it needs --slurm")
    if args.slurm and args.jobs != 1:
        parser.error("--jobs is for runs on this machine; with --slurm, Slurm runs the array's tasks")
    return args


SLURM_HELP = {
    "partition": "Slurm partition (default: the cluster's default partition)",
    "time": "time limit of each task, [D-]HH:MM:SS or minutes (default: the partition's)",
    "cpus_per_task": "CPUs of each task",
    "gpus_per_task": "GPUs of each task",
    "mem": "memory of each task, e.g. 16G (default: the partition's)",
}


def _flag_type(parse: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse type from a Slurm resource parser: its message in argparse's error."""
    def flag_type(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return flag_type


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
    slurm = entries.get("slurm", {})
    if isinstance(slurm, dict):  # otherwise make_grid reports it
        entries["slurm"] = {**slurm, **{name: getattr(args, name) for name in RESOURCE_PARSERS if hasattr(args, name)}}
    return entries, source


# ---- main -------------------------------------------------------------------------------


def print_plan(runs: list[PlannedRun]) -> None:
    width = len(str(len(runs)))
    for index, run in enumerate(runs, 1):
        print(f"[{index:>{width}}/{len(runs)}] {run.name}  {run.state()}  {shlex.join(run.command())}")


def print_status(runs: list[PlannedRun]) -> None:
    width = len(str(len(runs)))
    counts: Counter[str] = Counter()
    for index, run in enumerate(runs, 1):
        progress = run.progress()
        counts[progress.stage] += 1
        print(f"[{index:>{width}}/{len(runs)}] {run.name}  {progress}")
    print(f"status: {len(runs)} runs in {Path(runs[0].options.results_dir)}: "
          + ", ".join(f"{counts[stage]} {stage}" for stage in (DONE, CHECKPOINTED, NOT_STARTED)))


def submit_to_slurm(entries: dict, source: str, runs: list[PlannedRun]) -> int:
    """Submit the unfinished runs as one job array; say what went where."""
    try:
        submission = submit_unfinished(runs, make_grid(entries, source).slurm)
    except SlurmError as error:
        print(f"error: slurm: {error}; nothing was submitted", file=sys.stderr)
        return EXIT_USAGE
    print(f"sweep: {len(runs)} runs, {len(submission.done)} with results, {len(submission.queued)} pending or running "
          f"in Slurm, {len(submission.submitted)} submitted")
    for task, run in submission.queued:
        print(f"  {task}  {run.name}  (already pending or running)")
    if submission.job_id is None:
        print("slurm: nothing to submit")
        return 0
    count = len(submission.submitted)
    print(f"slurm: submitted job {submission.job_id}, " + (f"an array of {count} tasks:" if count > 1 else "one task:"))
    for task, run in submission.submitted:
        epoch = run.checkpointed_epoch()
        print(f"  {task}  {run.name}" + (f"  (resumes from epoch {epoch})" if epoch is not None else ""))
    print(f"slurm: each run's output in {Path(runs[0].options.results_dir)}/<name>.log, Slurm's log of each task in "
          f"{submission.folder}/<task>_0_log.out\n"
          f"slurm: follow the tasks with `squeue --me` and the runs with --status in place of --slurm; after a "
          f"timeout, a preemption or a node failure, the same command resubmits only what is unfinished", flush=True)
    return 0


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
    if args.status:
        print_status(runs)
        return 0
    if args.slurm:
        return submit_to_slurm(entries, source, runs)
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
