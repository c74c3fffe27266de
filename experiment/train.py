"""One run, from a config and its options to saved results: `train_and_evaluate`.

    from experiment import RunOptions, train_and_evaluate
    results = train_and_evaluate("echo.json", RunOptions(epochs=1, train_size=1000))

It trains (resuming from the run's checkpoint if it has one), evaluates on the test set
and writes ``<results-dir>/<filename>.pickle`` with the weights beside it, exactly as
`run.py` does, and returns the results dict (nats per example). Problems raise `RunError`
(with the exit status `run.py` returns), `model_utils.config.ConfigError` or
`datasets.DatasetError`, before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

import datasets
from experiment import epoch_csv
from experiment.checkpoints import CheckpointError, TrainingState, checkpoint_dir, remove_checkpoints, restore_latest
from experiment.data import prepare_data
from experiment.devices import data_parallel_strategy
from experiment.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, RunError
from experiment.evaluation import evaluate, information_measures, scores_line
from experiment.options import RunOptions
from experiment.record import collect_results, save, training_fingerprint
from experiment.results import result_paths
from experiment.signals import Terminated, raise_if_signalled
from experiment.training import Training, evaluation_seed
from model import RateDistortionModel, build_model
from model_utils.config import ExperimentConfig, load_config
from model_utils.precision import effective_precision


def resolve_config(args: RunOptions) -> ExperimentConfig:
    """The config with the command line's --beta, --epochs, --noise and --precision applied."""
    return with_options(load_config(args.config), args)


def with_options(config: ExperimentConfig, args: RunOptions) -> ExperimentConfig:
    """`config` with the options' β, epochs, noise and precision, where they are given."""
    config = config.with_beta(args.beta).with_epochs(args.epochs).with_noise(args.noise)
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


def _config_and_options(config: ExperimentConfig | str | dict, options: RunOptions) -> tuple[ExperimentConfig, RunOptions]:
    """The config with the options applied, and the options naming that config: a name,
    path or inline JSON as given (a dict becomes inline JSON), or a parsed config's source."""
    if isinstance(config, dict):
        config = json.dumps(config)
    if isinstance(config, str):
        options = replace(options, config=config)
        return resolve_config(options), options
    return with_options(config, options), replace(options, config=config.source)


def train_and_evaluate(config: ExperimentConfig | str | dict, options: RunOptions | None = None) -> dict[str, Any]:
    """Train (resuming from the run's checkpoint if it has one), evaluate and save one run;
    the results dict, as pickled (histories per epoch, test_* scores, nats per example).

    `config` is a parsed config, or a config name in configs/, a path or an inline JSON
    string, or the JSON object itself; `options` (default: `RunOptions()`) are `run.py`'s
    flags, whose --beta, --epochs, --noise and --precision apply on top of the config.
    """
    options = options or RunOptions()
    use_threads(options.threads)  # before anything starts TensorFlow's runtime
    strategy = data_parallel_strategy(options.devices)
    config, args = _config_and_options(config, options)
    config = supported_precision(config)
    filename = args.filename or default_filename(args, config)
    if Path(filename).name != filename or filename in {".", ".."}:
        raise RunError(f"--filename must be a plain file name, without directories; got {filename!r}", EXIT_USAGE)
    pickle_path, weights_path = result_paths(args.results_dir, filename)
    if pickle_path.exists() and not args.overwrite:
        raise RunError(f"{pickle_path} exists; choose another --filename or pass --overwrite", EXIT_USAGE)
    data, arrays = prepare_data(args, config)
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    with strategy.scope() if strategy else contextlib.nullcontext():
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
        seed = evaluation_seed(args.seed, config.epochs)
        model.reseed(seed)
        scores, statistics = evaluate(model, arrays["test"], config.batch, seed)
        if args.iw is not None:
            scores.update(information_measures(model, arrays["test"], scores["rate"], args.iw, config.batch, seed))
        results = collect_results(args, config, data, arrays, training.state.history, scores, statistics)
        results["evaluation_seed"] = seed
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
