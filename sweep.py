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

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from analysis.grid import NOT_RUN_ARGS, SweepError, read_sweep_file
from analysis.launch import run_all
from analysis.plan import PlannedRun, plan
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
