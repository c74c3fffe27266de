"""What a finished run records: the config as run, the results dict `run.py` pickles, and
the fingerprint a checkpoint must match to continue a run."""

from __future__ import annotations

import copy
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import datasets
from experiment.options import RunOptions
from experiment.results import save_pickle, write_atomically
from model import RateDistortionModel
from model_utils.config import ExperimentConfig


def resolved_config(config: ExperimentConfig) -> dict:
    """The config as run, still a valid config: the file's JSON with the effective epochs,
    beta, loss weights and Echo noise type."""
    raw = copy.deepcopy(config.raw)
    raw["epochs"] = config.epochs
    raw["precision"] = config.precision
    if config.beta is not None:
        raw["beta"] = config.beta
    for entry, loss in zip(raw["losses"], config.losses):
        entry["weight"] = loss.weight
    if config.channel.kind == "echo":
        layer = raw["layers"][config.channel.position]
        layer.setdefault("layer_kwargs", {})["noise"] = (
            "multiplicative" if config.channel.options["multiplicative"] else "additive"
        )
    return raw


def training_fingerprint(args: RunOptions, config: ExperimentConfig) -> dict[str, Any]:
    """What must match for a checkpoint to continue this run: everything that changes the
    training or the results (not paths, threads or verbosity)."""
    fingerprint = {
        "config": resolved_config(config),
        "dataset": args.dataset,
        "seed": args.seed,
        "per_label": args.per_label,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "validate": args.validate,
    }
    if args.devices not in (None, 1):  # the global batch; absent for one device, as before the option
        fingerprint["devices"] = args.devices
    return fingerprint


def collect_results(
    args: RunOptions,
    config: ExperimentConfig,
    data: datasets.Dataset,
    arrays: dict,
    history: dict[str, list[float]],
    scores: dict[str, float],
    statistics: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The results pickle: histories, test scores, encoder statistics and provenance."""
    results: dict[str, Any] = {name: list(values) for name, values in history.items()}
    results.update({f"test_{name}": value for name, value in scores.items()})
    results.update(statistics)
    results.update(
        units="nats per example",
        config=resolved_config(config),
        channel={"type": config.channel.type, **config.channel.options},
        config_source=config.source,
        config_notes=list(config.notes),
        args=asdict(args),
        dataset={
            "name": data.name,
            "source": data.source,
            "train_size": len(arrays["train"]),
            "val_size": None if arrays["val"] is None else len(arrays["val"]),
            "test_size": len(arrays["test"]),
        },
        seed=args.seed,
        versions={
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    )
    return results


def save(model: RateDistortionModel, results: dict, pickle_path: Path, weights_path: Path) -> None:
    """Weights first, then the pickle: a pickle only exists for a completely saved run."""
    write_atomically(weights_path, lambda temporary: model.save_weights(str(temporary)), suffix=".weights.h5")
    save_pickle(pickle_path, results)
