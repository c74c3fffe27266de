"""Compare finished runs: a results table, rate-distortion curves, learning curves and, for
one run, its reconstructions and samples. All rates and distortions in nats per example.

    python report.py RESULTS_DIR [--out DIR]          # default DIR: RESULTS_DIR/report
    python report.py --run RESULTS.pickle [--out DIR] [--data-dir DIR] [--seed S]

For a results directory it reads every results pickle under it (files that cannot be used
are skipped with a warning) and writes summary.csv (one row per run), summary.md (per
dataset, method × β, mean ± standard deviation over seeds), rate_distortion.png and
learning_curves.png. For one run (`--run`) it rebuilds the model from the pickle's config
and its .weights.h5 and writes <DIR>/<name>/reconstructions.png and samples.png (default
DIR: report/ beside the pickle). Exit status: 0 when something was written, 1 when
nothing usable was found or the run cannot be drawn.
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import sys
from pathlib import Path
from typing import Sequence

import datasets
from analysis.report import ReportError, report_directory, report_run
from experiment.results import ResultsError

EXIT_NOTHING = 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tables and figures of finished runs (nats per example).")
    parser.add_argument("results_dir", nargs="?", help="directory searched recursively for results pickles")
    parser.add_argument("--run", metavar="RESULTS.pickle", help="draw reconstructions and samples of one run")
    parser.add_argument("--out", help="output directory (default: RESULTS_DIR/report, or report/ beside --run's pickle)")
    parser.add_argument("--data-dir", help="data files for --run (default: the run's own, then $ECHO_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=0, help="which test images and draws --run shows")
    args = parser.parse_args(argv)
    if (args.results_dir is None) == (args.run is None):
        parser.error("give either RESULTS_DIR or --run RESULTS.pickle")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.run:
            pickle_path = Path(args.run)
            out = Path(args.out) if args.out else pickle_path.parent / "report"
            paths = report_run(pickle_path, out, args.data_dir, args.seed)
        else:
            results_dir = Path(args.results_dir)
            paths = report_directory(results_dir, Path(args.out) if args.out else results_dir / "report")
    except (ReportError, ResultsError, datasets.DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOTHING
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
