"""Reports of finished runs: the table and figures of a directory of runs, and the
reconstructions and samples of one run. All rates and distortions in nats per example."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import datasets
from analysis.plots import (
    channel_health_figure,
    has_channel_health,
    image_grid_figure,
    learning_curves_figure,
    rate_distortion_figure,
    save_figure,
)
from analysis.summary import collect, group_runs, write_csv, write_markdown
from experiment.finished import load_run
from experiment.results import write_atomically
from model_utils.config import ConfigError

FIGURE_SAMPLES, FIGURE_RECONSTRUCTIONS = 60, 20


class ReportError(Exception):
    """Nothing could be reported; the message says why and where."""


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
    if any(has_channel_health(record) for record in records):
        paths.append(out / "channel_health.png")
        save_figure(channel_health_figure(records), paths[-1])
    return paths


# ---- one run --------------------------------------------------------------------------


def report_run(pickle_path: Path, out: Path, data_dir: str | None, seed: int) -> list[Path]:
    """Rebuild one run's model and draw its reconstructions of test images and decoded
    draws from its marginal (Echo: from the aggregate posterior); the files written."""
    try:
        run = load_run(pickle_path)
    except ConfigError as error:
        raise ReportError(f"config {error}") from None
    results, config, model = run.results, run.config, run.model
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
