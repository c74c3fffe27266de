"""Measure a finished run the way the literature does, and add the scores to its pickle.

    python evaluate.py RESULTS.pickle [--iw K] [--test-size N] [--data-dir DIR] [--seed S]

Rebuilds the model from the pickle's config and the weights beside it, takes the run's own
test set (or a random subset of N of its test images), and computes on it, in nats per
example (see `model_utils.likelihood`): I(X;Z) (for Echo, its exact rate), the marginal
gap E KL(q(z|x) ‖ p(z)) − I(X;Z) (Gaussian and IAF channels), the active units and, with
--iw K, the importance-weighted negative log-likelihood with K samples (channels with a
tractable q(z|x)). The scores are printed and written into the pickle as test_* keys,
atomically, every other key unchanged. Exit status: 0, 1 for an unusable pickle or
missing data, 2 for an invalid command line or config.
"""

from __future__ import annotations

from model_utils.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence


import datasets
import run
from model import load_trained_model
from model_utils.config import ConfigError
from model_utils.results import ResultsError, save_pickle
from model_utils.run_options import FIELDS, RunOptions, positive_int


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Importance-weighted likelihood, I(X;Z) and active units of a finished run (nats).")
    parser.add_argument("results", help="a results pickle written by run.py, with its .weights.h5 beside it")
    parser.add_argument("--iw", type=positive_int, default=None, help="importance samples K per test image (e.g. 1000)")
    parser.add_argument("--test-size", type=positive_int, default=None, help="use a random subset of N test images")
    parser.add_argument("--data-dir", default=None, help="data files (default: the run's own, then $ECHO_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples drawn (default 0)")
    return parser.parse_args(argv)


def run_options(results: dict, data_dir: str | None, test_size: int | None) -> RunOptions:
    """The run's own options (as its pickle recorded them), with another data directory or
    test subset if asked."""
    recorded = {name: value for name, value in results.get("args", {}).items() if name in FIELDS}
    options = RunOptions(**recorded)
    return replace(options, data_dir=data_dir or options.data_dir, test_size=test_size or options.test_size, validate=False)


def measure(path: Path, iw: int | None, test_size: int | None, data_dir: str | None, seed: int) -> dict[str, float]:
    """The new scores of the run at `path` (test_* keys), also written into its pickle."""
    results, config, model = load_trained_model(path)
    options = run_options(results, data_dir, test_size)
    _, arrays = run.prepare_data(options, config)
    model.reseed(seed)
    scores, _ = run.evaluate(model, arrays["test"], config.batch)
    measured = run.information_measures(model, arrays["test"], scores["rate"], iw, config.batch)
    new = {f"test_{name}": value for name, value in measured.items()}
    save_pickle(path, {**results, **new})
    print(f"{path.stem}: {run.scores_line({**scores, **measured})} on {len(arrays['test'])} test images "
          f"(nats per example); added {', '.join(sorted(new))} to {path}")
    return new


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        measure(Path(args.results), args.iw, args.test_size, args.data_dir, args.seed)
    except ConfigError as error:
        print(f"error: config {error}", file=sys.stderr)
        return run.EXIT_USAGE
    except (ResultsError, datasets.DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return run.EXIT_DATA
    except run.RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
