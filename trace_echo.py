"""Trace an Echo model's first training steps: its scale head, f(x), the noise, and the
paths through which the loss's gradient reaches log s(x).

    python trace_echo.py --config echo.json --steps 80 [--seed 0] [--train-size 8000] [--out trace.csv]

Sets the run up as `run.py` would (same config, data, seeds and first epoch) and, before
each of the first N training steps, measures on that step's batch what
`experiment.echo_trace` describes; prints a table at steps 1, 2, 5, 10, 20, 40, ... and
the last, and writes every step to --out as CSV. Nats per example. Writes no results.
Exit status: 0, 2 for an invalid command line or config (or a config without Echo
noise), 1 for a data problem.
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import csv
import sys
from pathlib import Path
from typing import Sequence

from experiment.echo_trace import PATHS, trace_first_steps
from experiment.errors import REPORTED, failure
from experiment.options import RunOptions, add_run_flags, positive_int
from experiment.train import resolve_config, use_threads

SHOWN = ("rate", "distortion", "a_median", "a_max", "saturated", "at_floor", "features_norm", "f_mean", "f_spread",
         "noise_mean", "noise_spread", *(f"grad_{path}" for path in PATHS), "grad_total", "grad_total_on_a")


def parse_args(argv: Sequence[str] | None = None) -> tuple[RunOptions, argparse.Namespace]:
    parser = argparse.ArgumentParser(description="Trace an Echo model's first training steps (nats per example).")
    parser.add_argument("--steps", type=positive_int, default=80, help="training steps to trace (at most one epoch)")
    parser.add_argument("--out", type=Path, help="write every step's numbers to this CSV file")
    add_run_flags(parser, ["config", "beta", "dataset", "seed", "data_dir", "train_size", "threads", "epochs"])
    args = parser.parse_args(argv)
    options = RunOptions(**{name: getattr(args, name) for name in
                            ("config", "beta", "dataset", "seed", "data_dir", "train_size", "threads", "epochs")})
    return options, args


def _table_steps(steps: int) -> set[int]:
    shown, step = {1, 2, 5}, 10
    while step < steps:
        shown.add(step)
        step *= 2
    return shown | {steps}


def main(argv: Sequence[str] | None = None) -> int:
    options, args = parse_args(argv)
    try:
        use_threads(options.threads)
        config = resolve_config(options)
        print(f"trace: {config.source}, {args.steps} steps, seed {options.seed} (nats per example; a path's "
              "gradient < 0 raises log s(x))", flush=True)
        print(" ".join(f"{name.removeprefix('grad_')[:12]:>12}" for name in ("step", *SHOWN)))
        records = []
        for record in trace_first_steps(config, options, args.steps):
            records.append(record)
            if record["step"] in _table_steps(args.steps):
                print(" ".join(f"{record[name]:>12.4g}" for name in ("step", *SHOWN)), flush=True)
    except REPORTED as error:
        message, status = failure(error)
        print(f"error: {message}", file=sys.stderr)
        return status
    if args.out:
        with open(args.out, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
        print(f"wrote {len(records)} steps to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
