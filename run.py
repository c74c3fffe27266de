"""Train one rate-distortion autoencoder from a JSON config and save its history.

    python run.py --config echo.json --beta 1.0 --filename echo_example --dataset binary_mnist

Rates, distortions and losses are in nats per example. Results go to
``<results-dir>/<filename>.pickle`` (a plain dict, see README) with the weights beside it
as ``<filename>.weights.h5``, written when the run completes. Meanwhile every finished
epoch is checkpointed in ``<filename>.checkpoint/`` and logged in ``<filename>.csv``, and
the same command resumes an interrupted run exactly where its last checkpoint left it.
Exit status: 0 on success, 2 for an invalid command line or config, 1 for a data problem
or a diverged run, 130 after Ctrl-C (SIGINT) and 143 after SIGTERM.
"""

from __future__ import annotations

from model_utils.console import import_tensorflow_quietly

import_tensorflow_quietly()

import copy
import math
import platform
import signal
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
from model import RateDistortionModel, build_model, derived_seed
from model_utils import epoch_csv
from model_utils.checkpoints import (
    CheckpointError,
    TrainingState,
    checkpoint_dir,
    remove_checkpoints,
    restore_latest,
    save_checkpoint,
)
from model_utils.config import ConfigError, ExperimentConfig, load_config
from model_utils.likelihood import has_tractable_posterior, information_scores
from model_utils.precision import effective_precision
from model_utils.results import result_paths, save_pickle, write_atomically
from model_utils.run_options import RunOptions, parse_run_options
from model_utils.schedules import learning_rate_schedule

EXIT_DATA, EXIT_USAGE = 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


class RunError(Exception):
    """A problem that ends the run with a message and a non-zero exit status."""

    def __init__(self, message: str, status: int = EXIT_DATA):
        super().__init__(message)
        self.status = status


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, as KeyboardInterrupt is by SIGINT."""


_signals_received: list[int] = []


def _interrupt(signum, frame):
    _signals_received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def raise_on_signals() -> None:
    """From now on SIGINT raises KeyboardInterrupt and SIGTERM Terminated in the main thread,
    and both are remembered for `raise_if_signalled`."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def raise_if_signalled() -> None:
    """Raise again for a signal whose exception was lost: Python swallows an exception
    raised while a finalizer (__del__) runs, and TensorFlow's collect its traced functions."""
    if _signals_received:
        raise Terminated() if _signals_received[-1] == signal.SIGTERM else KeyboardInterrupt()


class SignalCheck(keras.callbacks.Callback):
    """Stops training at the next batch after a signal whose exception was lost."""

    def on_train_batch_end(self, batch, logs=None):
        raise_if_signalled()

    def on_test_batch_end(self, batch, logs=None):
        raise_if_signalled()


# ---- set-up -----------------------------------------------------------------------------


def resolve_config(args: RunOptions) -> ExperimentConfig:
    """The config with the command line's --beta, --epochs, --noise and --precision applied."""
    config = load_config(args.config).with_beta(args.beta).with_epochs(args.epochs).with_noise(args.noise)
    return config.with_precision(args.precision)


def supported_precision(config: ExperimentConfig) -> ExperimentConfig:
    """The config in a precision this machine computes in hardware: bfloat16 falls back to
    float32, with a warning, where it would be emulated."""
    precision, warning = effective_precision(config.precision)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return config.with_precision(precision)


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


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of everything random in one epoch (data order, noise), from the run's seed
    and the epoch alone; epoch = the number of epochs seeds the final evaluation."""
    return derived_seed(seed, epoch)


def seed_epoch(model: RateDistortionModel, seed: int, epoch: int) -> None:
    """Seed epoch `epoch` from (seed, epoch) alone, so that its noise does not depend on the
    epochs this process ran before it (a resumed run draws what an uninterrupted one does).
    The traced train and test functions are kept: they read their seeds at run time."""
    model.reseed(epoch_seed(seed, epoch))


class EpochLog(keras.callbacks.Callback):
    """Adds the epoch's learning rate (as the schedule gave it, before float32 rounding)
    and wall time (seconds, validation included) to its logs, so that the history, the CSV
    and TensorBoard record them."""

    def __init__(self):
        super().__init__()
        self.rate = math.nan

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self.rate
            logs["epoch_time"] = time.perf_counter() - self._start


class Training:
    """The epochs of one run, from a checkpointed state to the end. After each epoch the
    state (history so far) is checkpointed, then logged to the CSV; `state` is always the
    last checkpointed one."""

    def __init__(self, model: RateDistortionModel, config: ExperimentConfig, arrays: dict, args: RunOptions,
                 state: TrainingState, checkpoints: Path, csv_path: Path):
        self.model, self.config, self.arrays, self.args = model, config, arrays, args
        self.state, self.checkpoints, self.csv_path = state, checkpoints, csv_path
        self.epoch_log = EpochLog()
        self.callbacks = [self.epoch_log, keras.callbacks.TerminateOnNaN(), SignalCheck()]
        if args.tensorboard:
            self.callbacks.append(keras.callbacks.TensorBoard(args.tensorboard))

    def run(self) -> None:
        """Train the remaining epochs. A loss that becomes NaN or infinite raises RunError."""
        schedule = learning_rate_schedule(self.config.lr)
        validation = evaluation_pipeline(self.arrays["val"], self.config.batch) if self.arrays["val"] is not None else None
        for epoch in range(self.state.epoch, self.config.epochs):
            seed_epoch(self.model, self.args.seed, epoch)
            self.epoch_log.rate = schedule(epoch, self.config.epochs)
            self.model.optimizer.learning_rate = self.epoch_log.rate
            history = self.model.fit(
                training_pipeline(self.arrays["train"], self.config.batch, epoch_seed(self.args.seed, epoch)),
                initial_epoch=epoch,
                epochs=epoch + 1,
                validation_data=validation,
                callbacks=self.callbacks,
                verbose=self.args.verbose,
                shuffle=False,  # the pipeline shuffles, with the epoch's seed
            )
            logs = {name: values[-1] for name, values in history.history.items()}
            diverged = [name for name, value in logs.items() if not math.isfinite(value)]
            if diverged or "loss" not in logs:
                raise RunError(
                    f"training diverged: {', '.join(diverged) or 'loss'} became NaN or infinite in epoch {epoch + 1}; "
                    "no results were written (start afresh with --overwrite, e.g. with a smaller learning rate)"
                )
            raise_if_signalled()
            finished = self.state.after_epoch(logs)
            save_checkpoint(self.checkpoints, self.model, finished)
            self.state = finished
            epoch_csv.append_last(self.csv_path, finished.history)

    def interruption(self, status: int) -> RunError:
        """The error that ends an interrupted run, saying what is kept and how to resume."""
        done = self.state.epoch
        kept = (f"the checkpoint of epoch {done} is kept in {self.checkpoints}: run the same command again to resume"
                if done else "no epoch had finished, so there is nothing to resume")
        signal_name = "SIGTERM" if status == EXIT_TERMINATED else "SIGINT"
        where = "while evaluating" if done == self.config.epochs else f"in epoch {done + 1} of {self.config.epochs}"
        return RunError(f"interrupted by {signal_name} {where}; {kept}", status)


STATISTICS = ("z_mean", "z_log_scale", "z")


def information_measures(model: RateDistortionModel, x: np.ndarray, rate: float, k: int | None, batch: int) -> dict[str, float]:
    """I(X;Z), the marginal gap, the active units and, given K, the importance-weighted NLL
    with K samples (channels with a tractable q(z|x)) on the test images x
    (`model_utils.likelihood`), plus ``information_size``, the number of images used."""
    tractable = has_tractable_posterior(model)
    if k is not None and not tractable:
        print(f"note: --iw: {model.channel.kind} noise has no tractable q(z|x) to weight samples with, so there is no "
              "importance-weighted likelihood; I(X;Z) is its exact rate, and the active units are measured",
              file=sys.stderr, flush=True)
    scores = information_scores(model, x, rate, k if tractable else None, batch)
    return {**scores, "information_size": len(x)}


def scores_line(scores: dict[str, float]) -> str:
    """'rate R, distortion D, -ELBO E[, NLL (IW, K=k) L, I(X;Z) I, active units A]'."""
    parts = [f"rate {scores['rate']:.3f}", f"distortion {scores['distortion']:.3f}", f"-ELBO {-scores['elbo']:.3f}"]
    if "nll_iw" in scores:
        parts.append(f"NLL (IW, K={scores['nll_iw_k']}) {scores['nll_iw']:.3f}")
    if "mutual_information" in scores:
        parts.append(f"I(X;Z) {scores['mutual_information']:.3f}")
    if "active_units" in scores:
        parts.append(f"active units {scores['active_units']}")
    return ", ".join(parts)


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
    precision = f" ({config.precision})" if config.precision != "float32" else ""
    return (
        f"echo: {config.source} [{config.channel.type} noise{clip}, losses: "
        f"{', '.join(f'{loss.type}×{loss.weight:g}' for loss in config.losses)}] on {data.name} "
        f"({data.source}; train {len(arrays['train'])}{val}, test {len(arrays['test'])}), "
        f"{model.count_params():,} parameters{precision}, {beta}, {config.epochs} epoch{'s' * (config.epochs != 1)} of batch {config.batch}, "
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


def training_fingerprint(args: RunOptions, config: ExperimentConfig) -> dict[str, Any]:
    """What must match for a checkpoint to continue this run: everything that changes the
    training or the results (not paths, threads or verbosity)."""
    return {
        "config": resolved_config(config),
        "dataset": args.dataset,
        "seed": args.seed,
        "per_label": args.per_label,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "validate": args.validate,
    }


def restore(model: RateDistortionModel, checkpoints: Path, fingerprint: dict[str, Any], overwrite: bool) -> TrainingState:
    """The state to start from: the newest usable checkpoint's (loaded into the model), or a
    fresh one; --overwrite discards checkpoints."""
    if overwrite:
        remove_checkpoints(checkpoints)
    try:
        state, skipped = restore_latest(checkpoints, model, fingerprint)
    except CheckpointError as error:
        raise RunError(str(error), EXIT_USAGE) from None
    for note in skipped:
        print(f"warning: skipped a damaged checkpoint: {note}", file=sys.stderr)
    return state or TrainingState(fingerprint)


def run(args: RunOptions) -> dict[str, Any]:
    """Train (resuming from the run's checkpoint if it has one), evaluate and save one run:
    the whole of `run.py`. Returns the results dict."""
    use_threads(args.threads)
    config = supported_precision(resolve_config(args))
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
    checkpoints = checkpoint_dir(args.results_dir, filename)
    state = restore(model, checkpoints, training_fingerprint(args, config), args.overwrite)
    print(start_line(args, config, data, arrays, model, pickle_path), flush=True)
    csv_path = pickle_path.with_suffix(".csv")
    epoch_csv.rewrite(csv_path, state.history)
    if state.epoch:
        print(f"resuming {filename} from epoch {state.epoch} of {config.epochs}", flush=True)

    training = Training(model, config, arrays, args, state, checkpoints, csv_path)
    try:
        training.run()
        raise_if_signalled()
        model.reseed(epoch_seed(args.seed, config.epochs))
        scores, statistics = evaluate(model, arrays["test"], config.batch)
        if args.iw is not None:
            scores.update(information_measures(model, arrays["test"], scores["rate"], args.iw, config.batch))
        results = collect_results(args, config, data, arrays, training.state.history, scores, statistics)
        raise_if_signalled()
        save(model, results, pickle_path, weights_path)
    except KeyboardInterrupt:
        raise training.interruption(EXIT_INTERRUPTED) from None
    except Terminated:
        raise training.interruption(EXIT_TERMINATED) from None
    if not args.keep_checkpoint:
        remove_checkpoints(checkpoints)
    print(f"test: {scores_line(scores)} (nats per example); saved {pickle_path}", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_run_options(argv)
    raise_on_signals()
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
    except (KeyboardInterrupt, Terminated) as interruption:
        status = EXIT_TERMINATED if isinstance(interruption, Terminated) else EXIT_INTERRUPTED
        print("error: interrupted before training started; nothing was written", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
