"""The arrays one run trains, validates and tests on: a dataset with the run's subsets."""

from __future__ import annotations

import numpy as np

import datasets
from datasets.pipeline import keep_per_label, subsample
from experiment.errors import EXIT_USAGE, RunError
from experiment.options import RunOptions
from model_utils.config import ExperimentConfig


def prepare_data(args: RunOptions, config: ExperimentConfig) -> tuple[datasets.Dataset, dict[str, np.ndarray | None]]:
    """The dataset and the arrays to train, validate and test on (subsets applied)."""
    data = datasets.load(args.dataset, args.data_dir)
    if tuple(data.x_train.shape[1:]) != tuple(config.input_shape):
        raise RunError(
            f"{config.source}: input_shape {list(config.input_shape)} does not match the images of "
            f"{data.name}, {list(data.x_train.shape[1:])}",
            EXIT_USAGE,
        )
    x_train, y_train = data.x_train, data.y_train
    if args.per_label is not None:
        x_train, y_train = keep_per_label(x_train, y_train, args.per_label, args.seed)
    if args.train_size is not None:
        x_train, y_train = subsample(x_train, y_train, args.train_size, args.seed)
    x_test = data.x_test
    if args.test_size is not None:
        # The binarized MNIST test file is sorted by class: a subset must be random.
        x_test, _ = subsample(x_test, data.y_test, args.test_size, args.seed + 1)
    x_val = None
    if args.validate:
        if data.x_val is None:
            raise RunError(f"--validate: the dataset {data.name} has no validation split", EXIT_USAGE)
        x_val = data.x_val
    for split, x in (("training", x_train), ("test", x_test), ("validation", x_val)):
        if x is not None and len(x) < config.batch:
            raise RunError(
                f"the {split} set has {len(x)} examples, fewer than one batch of {config.batch}: "
                "Echo noise and evaluation use full batches only",
                EXIT_USAGE,
            )
    return data, {"train": x_train, "val": x_val, "test": x_test}
