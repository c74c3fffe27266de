"""Measure a finished run the way the literature does, and add the scores to its pickle.

    python evaluate.py RESULTS.pickle [--iw K] [--test-size N] [--data-dir DIR] [--seed S]

Rebuilds the model from the pickle's config and the weights beside it, takes the run's own
test set (or a random subset of N of its test images), and computes on it, in nats per
example (see `experiment.likelihood`): I(X;Z) (for Echo, its exact rate), the marginal
gap E KL(q(z|x) ‖ p(z)) − I(X;Z) (Gaussian and IAF channels), the active units and, with
--iw K, the importance-weighted negative log-likelihood with K samples (channels with a
tractable q(z|x)). The scores are printed and written into the pickle as test_* keys,
atomically, every other key unchanged. Exit status: 0, 1 for an unusable pickle or
missing data, 2 for an invalid command line or config.

The command line over `experiment.finished.measure`.
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import sys
from pathlib import Path
from typing import Sequence

from experiment.errors import REPORTED, failure
from experiment.finished import measure
from experiment.options import positive_int


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Importance-weighted likelihood, I(X;Z) and active units of a finished run (nats).")
    parser.add_argument("results", help="a results pickle written by run.py, with its .weights.h5 beside it")
    parser.add_argument("--iw", type=positive_int, default=None, help="importance samples K per test image (e.g. 1000)")
    parser.add_argument("--test-size", type=positive_int, default=None, help="use a random subset of N test images")
    parser.add_argument("--data-dir", default=None, help="data files (default: the run's own, then $ECHO_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples drawn (default 0)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        measure(Path(args.results), args.iw, args.test_size, args.data_dir, args.seed)
    except REPORTED as error:
        message, status = failure(error)
        print(f"error: {message}", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
