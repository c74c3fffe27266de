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

from model_utils.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

import datasets
from model import load_trained_model
from model_utils.config import ConfigError
from model_utils.plots import image_grid_figure, learning_curves_figure, rate_distortion_figure, save_figure
from model_utils.results import ResultsError, write_atomically
from model_utils.summary import collect, group_runs, write_csv, write_markdown

EXIT_NOTHING = 1
FIGURE_SAMPLES, FIGURE_RECONSTRUCTIONS = 60, 20


class ReportError(Exception):
    """Nothing could be reported; the message says why and where."""


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


# ---- a directory of runs --------------------------------------------------------------


def report_directory(results_dir: Path, out: Path) -> list[Path]:
    """Write the table and figures of every usable run under results_dir; the files
    written. Warnings for unusable files go to stderr."""
    if not results_dir.is_dir():
        raise ReportError(f"{results_dir}: no such directory")
    records, warnings = collect(results_dir)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not records:
        raise ReportError(f"{results_dir}: no usable results pickles found")
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(records)
    paths = [out / "summary.csv", out / "summary.md", out / "rate_distortion.png", out / "learning_curves.png"]
    write_atomically(paths[0], lambda temporary: write_csv(records, temporary))
    write_atomically(paths[1], lambda temporary: write_markdown(groups, temporary))
    save_figure(rate_distortion_figure(groups), paths[2])
    save_figure(learning_curves_figure(records), paths[3])
    return paths


# ---- one run --------------------------------------------------------------------------


def report_run(pickle_path: Path, out: Path, data_dir: str | None, seed: int) -> list[Path]:
    """Rebuild one run's model and draw its reconstructions of test images and decoded
    draws from its marginal (Echo: from the aggregate posterior); the files written."""
    try:
        results, config, model = load_trained_model(pickle_path)
    except ConfigError as error:
        raise ReportError(f"config {error}") from None
    name = results.get("dataset", {}).get("name")
    data = datasets.load(name, data_dir or results.get("args", {}).get("data_dir"))
    if len(data.x_test) < config.batch:
        raise ReportError(f"{name} has {len(data.x_test)} test images, fewer than one batch of {config.batch}")
    model.reseed(seed)
    chosen = np.random.default_rng(seed).choice(len(data.x_test), size=config.batch, replace=False)
    images = data.x_test[chosen]

    reconstructions = model.reconstruct(images).numpy()
    latents, what = model.draw_latents(min(FIGURE_SAMPLES, config.batch), images)
    samples = model.mean_image(latents).numpy()
    directory = out / pickle_path.stem
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "reconstructions.png", directory / "samples.png"]
    save_figure(image_grid_figure(
        [(f"{FIGURE_RECONSTRUCTIONS} random {name} test images", images[:FIGURE_RECONSTRUCTIONS]),
         ("their reconstructions: the mean of p(x|z) for one z ~ q(z|x) each", reconstructions[:FIGURE_RECONSTRUCTIONS])],
        f"{pickle_path.stem}: reconstructions",
    ), paths[0])
    save_figure(image_grid_figure(
        [(f"the mean of p(x|z) for {len(samples)} draws of z", samples)],
        f"{pickle_path.stem}: samples, z drawn from {what}",
    ), paths[1])
    return paths


# ---- main -----------------------------------------------------------------------------


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
