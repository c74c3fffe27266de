"""Train one rate-distortion autoencoder from a JSON config and save its history.

    python run.py --config echo.json --beta 1.0 --filename echo_example --dataset binary_mnist

Rates, distortions and losses are in nats per example. Results go to
``<results-dir>/<filename>.pickle`` (a plain dict, see README) with the weights beside it
as ``<filename>.weights.h5``, written when the run completes. Meanwhile every finished
epoch is checkpointed in ``<filename>.checkpoint/`` and logged in ``<filename>.csv``, and
the same command resumes an interrupted run exactly where its last checkpoint left it.
Exit status: 0 on success, 2 for an invalid command line or config, 1 for a data problem
or a diverged run, 130 after Ctrl-C (SIGINT) and 143 after SIGTERM.

The command line over `experiment.train_and_evaluate`.
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import sys
from typing import Sequence

from experiment.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, REPORTED, failure
from experiment.options import parse_run_options
from experiment.signals import Terminated, raise_on_signals
from experiment.train import train_and_evaluate


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_run_options(argv)
    raise_on_signals()
    try:
        train_and_evaluate(args.config, args)
    except REPORTED as error:
        message, status = failure(error)
        print(f"error: {message}", file=sys.stderr)
        return status
    except (KeyboardInterrupt, Terminated) as interruption:
        status = EXIT_TERMINATED if isinstance(interruption, Terminated) else EXIT_INTERRUPTED
        print("error: interrupted before training started; nothing was written", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
