"""Train one rate-distortion autoencoder from a JSON config and save its history.

    python run.py --config echo.json --beta 1.0 --filename echo_example --dataset binary_mnist

Rates, distortions and losses are in nats per example. Results go to
``<results-dir>/<filename>.pickle`` (a plain dict, see README) with the weights beside it
as ``<filename>.weights.h5``. Exit status: 0 on success, 2 for an invalid command line or
config, 1 for a data problem, a diverged run or an interrupted one; nothing is written
unless the run completes.
"""

from __future__ import annotations

import copy
import math
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

import datasets
from datasets.pipeline import evaluation_pipeline, keep_per_label, subsample, training_pipeline
from model import RateDistortionModel, build_model
from model_utils.config import ConfigError, ExperimentConfig, load_config
from model_utils.results import result_paths, save_pickle, write_atomically
from model_utils.run_options import RunOptions, parse_run_options
from model_utils.schedules import learning_rate_schedule

EXIT_DATA, EXIT_USAGE = 1, 2


class RunError(Exception):
    """A problem that ends the run with a message and a non-zero exit status."""

    def __init__(self, message: str, status: int = EXIT_DATA):
        super().__init__(message)
        self.status = status


# ---- set-up -----------------------------------------------------------------------------


def resolve_config(args: RunOptions) -> ExperimentConfig:
    """The config with the command line's --beta, --epochs and --noise applied."""
    return load_config(args.config).with_beta(args.beta).with_epochs(args.epochs).with_noise(args.noise)


def default_filename(args: RunOptions, config: ExperimentConfig) -> str:
    """The results name when --filename is not given: <config>_<dataset>_beta<β>_seed<seed>."""
    stem = "inline" if config.source.startswith("inline") else Path(config.source).stem
    beta = f"_beta{config.beta:g}" if config.beta is not None else ""
    return f"{stem}_{args.dataset}{beta}_seed{args.seed}"


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


# ---- training ---------------------------------------------------------------------------


class EpochLog(keras.callbacks.Callback):
    """Sets each epoch's learning rate from the schedule and records it with the epoch's
    wall time (seconds, validation included)."""

    def __init__(self, config: ExperimentConfig):
        super().__init__()
        self.schedule = learning_rate_schedule(config.lr)
        self.epochs = config.epochs
        self.lr: list[float] = []
        self.epoch_time: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        rate = self.schedule(epoch, self.epochs)
        self.model.optimizer.learning_rate = rate
        self.lr.append(rate)
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_time.append(time.perf_counter() - self._start)


def train(model: RateDistortionModel, config: ExperimentConfig, arrays: dict, args: RunOptions) -> tuple[dict, EpochLog]:
    """Fit the model; the per-epoch history (nats per example) and the epoch log. A loss
    that becomes NaN or infinite stops training and raises RunError."""
    epoch_log = EpochLog(config)
    validation = evaluation_pipeline(arrays["val"], config.batch) if arrays["val"] is not None else None
    history = model.fit(
        training_pipeline(arrays["train"], config.batch, args.seed),
        epochs=config.epochs,
        validation_data=validation,
        callbacks=[epoch_log, keras.callbacks.TerminateOnNaN()],
        verbose=args.verbose,
        shuffle=False,  # the pipeline shuffles, with the run's seed
    )
    logged = {name: [float(v) for v in values] for name, values in history.history.items()}
    diverged = [name for name, values in logged.items() if not all(math.isfinite(v) for v in values)]
    if diverged or len(logged.get("loss", [])) < config.epochs:
        raise RunError(
            f"training diverged: {', '.join(diverged) or 'loss'} became NaN or infinite in epoch "
            f"{len(logged.get('loss', []))}; no results were written (try a smaller learning rate)"
        )
    return logged, epoch_log


STATISTICS = ("z_mean", "z_log_scale", "z")


def evaluate(model: RateDistortionModel, x: np.ndarray, batch: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """One pass over x in full batches (the final, overlapping batch counts only its new
    examples): the per-example means of every reported term, in nats, plus the ELBO; and
    the encoder's z_mean, z_log_scale and a sample z for every example, each [N, D]."""
    step = tf.function(model.terms_and_outputs)
    totals: dict[str, float] = {}
    statistics: dict[str, list[np.ndarray]] = {name: [] for name in STATISTICS}
    for images, weights in evaluation_pipeline(x, batch):
        terms, outputs = step(images)
        weights = weights.numpy().astype(np.float64)
        for name, values in terms.items():
            totals[name] = totals.get(name, 0.0) + float(weights @ values.numpy().astype(np.float64))
        for name in STATISTICS:
            statistics[name].append(outputs[name].numpy()[weights > 0])
    scores = {name: total / len(x) for name, total in totals.items()}
    scores["elbo"] = -(scores["rate"] + scores["distortion"])
    return scores, {name: np.concatenate(parts) for name, parts in statistics.items()}


# ---- results ----------------------------------------------------------------------------


def resolved_config(config: ExperimentConfig) -> dict:
    """The config as run, still a valid config: the file's JSON with the effective epochs,
    beta, loss weights and Echo noise type."""
    raw = copy.deepcopy(config.raw)
    raw["epochs"] = config.epochs
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


def collect_results(
    args: RunOptions,
    config: ExperimentConfig,
    data: datasets.Dataset,
    arrays: dict,
    history: dict,
    epoch_log: EpochLog,
    scores: dict[str, float],
    statistics: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The results pickle: histories, test scores, encoder statistics and provenance."""
    results: dict[str, Any] = dict(history)
    results["lr"] = epoch_log.lr
    results["epoch_time"] = epoch_log.epoch_time
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


# ---- main -------------------------------------------------------------------------------


def start_line(
    args: RunOptions,
    config: ExperimentConfig,
    data: datasets.Dataset,
    arrays: dict,
    model: RateDistortionModel,
    pickle_path: Path,
) -> str:
    """One line saying what will run, on what, and where the results go."""
    val = f", validation {len(arrays['val'])}" if arrays["val"] is not None else ""
    beta = f"beta={config.beta:g}" if config.beta is not None else "loss weights as configured"
    clip = f" (clip {model.channel.clip:.4f})" if config.channel.kind == "echo" else ""
    return (
        f"echo: {config.source} [{config.channel.type} noise{clip}, losses: "
        f"{', '.join(f'{loss.type}×{loss.weight:g}' for loss in config.losses)}] on {data.name} "
        f"({data.source}; train {len(arrays['train'])}{val}, test {len(arrays['test'])}), "
        f"{model.count_params():,} parameters, {beta}, {config.epochs} epoch{'s' * (config.epochs != 1)} of batch {config.batch}, "
        f"seed {args.seed} -> {pickle_path}"
    )


def use_threads(threads: int | None) -> None:
    """Let TensorFlow use `threads` CPU threads for each op and between ops (None: all)."""
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        raise RunError("--threads must be set before TensorFlow starts; run it in a new process", EXIT_USAGE) from None


def run(args: RunOptions) -> dict[str, Any]:
    """Train, evaluate and save one run (the whole of `run.py`); returns the results dict."""
    use_threads(args.threads)
    config = resolve_config(args)
    filename = args.filename or default_filename(args, config)
    if Path(filename).name != filename or filename in {".", ".."}:
        raise RunError(f"--filename must be a plain file name, without directories; got {filename!r}", EXIT_USAGE)
    pickle_path, weights_path = result_paths(args.results_dir, filename)
    if pickle_path.exists() and not args.overwrite:
        raise RunError(f"{pickle_path} exists; choose another --filename or pass --overwrite", EXIT_USAGE)
    data, arrays = prepare_data(args, config)
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(config)
    print(start_line(args, config, data, arrays, model, pickle_path), flush=True)

    history, epoch_log = train(model, config, arrays, args)
    scores, statistics = evaluate(model, arrays["test"], config.batch)
    results = collect_results(args, config, data, arrays, history, epoch_log, scores, statistics)
    save(model, results, pickle_path, weights_path)
    print(
        f"test: rate {scores['rate']:.3f}, distortion {scores['distortion']:.3f}, "
        f"-ELBO {-scores['elbo']:.3f} (nats per example); saved {pickle_path}",
        flush=True,
    )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_run_options(argv)
    try:
        run(args)
    except ConfigError as error:
        print(f"error: config {error}", file=sys.stderr)
        return EXIT_USAGE
    except datasets.DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print("error: interrupted; no results were written", file=sys.stderr)
        return EXIT_DATA
    return 0


if __name__ == "__main__":
    sys.exit(main())
