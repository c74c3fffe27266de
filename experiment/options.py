"""The options of one training run, and the command-line flags of `run.py` that set them.

`RunOptions` is the single description of a run that every entry point shares: `run.py`
parses its command line into one (`parse_run_options`), `sweep.py` builds one per grid
point and turns it back into the equivalent `run.py` command (`RunOptions.to_argv`). Each
field's flag, type and help text are declared once, on the field.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

from model_utils.precision import PRECISIONS


class OptionError(ValueError):
    """An invalid option value (raised instead of exiting by `parse_run_options(..., exit=False)`)."""


def non_negative_beta(text: str) -> float:
    """A β from the command line: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _option(default: Any, help: str, type: Callable[[str], Any] | None = None, choices: Sequence[Any] | None = None) -> Any:
    """A RunOptions field with its command-line flag (--name, underscores as dashes, except
    for the reference implementation's --per_label), type and help."""
    return field(default=default, metadata={"help": help, "type": type, "choices": choices})


@dataclass(frozen=True)
class RunOptions:
    """Everything that selects and shapes one run besides the config file's contents."""

    config: str = _option("echo.json", "config name in configs/, a path, or inline JSON", str)
    beta: float | None = _option(None, "weight of every rate term (default: the config's)", non_negative_beta)
    filename: str | None = _option(None, "results name (default: <config>_<dataset>_beta<b>_seed<s>)", str)
    dataset: str = _option("binary_mnist", "dataset name (see datasets.NAMES)", str)
    noise: str | None = _option(None, "Echo noise type", str, ("additive", "multiplicative"))
    validate: bool = _option(False, "evaluate on the validation split after each epoch")
    verbose: int = _option(1, "Keras progress: 0 silent, 1 bar, 2 line", int, (0, 1, 2))
    per_label: int | None = _option(None, "keep N training examples per class", positive_int)
    epochs: int | None = _option(None, "number of epochs (default: the config's)", positive_int)
    seed: int = _option(0, "random seed; a run is reproducible from it", integer)
    data_dir: str | None = _option(None, "directory with the data files (before $ECHO_DATA_DIR)", str)
    results_dir: str = _option("results", "where results are written (default: results/)", str)
    train_size: int | None = _option(None, "train on a random subset of N examples", positive_int)
    test_size: int | None = _option(None, "test on a random subset of N examples", positive_int)
    overwrite: bool = _option(False, "replace existing results of the same filename")
    threads: int | None = _option(None, "CPU threads TensorFlow may use (default: all)", positive_int)
    keep_checkpoint: bool = _option(False, "keep <filename>.checkpoint/ after the results are written")
    tensorboard: str | None = _option(None, "also log every epoch's scalars for TensorBoard in DIR", str)
    precision: str | None = _option(None, "float32, or mixed_bfloat16 for bfloat16 convolutions and dense layers "
                                          "(default: the config's, else float32)", str, PRECISIONS)
    iw: int | None = _option(None, "after training, also estimate the test log-likelihood with K importance "
                                   "samples, I(X;Z) and the active units", positive_int)
    devices: int | None = _option(None, "train data-parallel on N devices (GPUs, else N logical CPU devices), each "
                                        "replica with the config's batch: the global batch is N × batch", positive_int)

    def to_argv(self) -> list[str]:
        """The `run.py` arguments that give these options: what a run is (config, dataset,
        seed) always, the other options where they differ from their defaults."""
        argv: list[str] = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value == spec.default and spec.name not in _ALWAYS_EXPLICIT:
                continue
            if spec.metadata["type"] is None:
                argv.append(flag(spec.name))
            else:
                argv += [flag(spec.name), str(value)]
        return argv


_ALWAYS_EXPLICIT = ("config", "dataset", "seed")


def flag(name: str) -> str:
    """The command-line flag of a RunOptions field."""
    return "--per_label" if name == "per_label" else "--" + name.replace("_", "-")


FIELDS: tuple[str, ...] = tuple(spec.name for spec in fields(RunOptions))


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise OptionError(message)


def add_run_flags(parser: argparse.ArgumentParser, names: Sequence[str] = FIELDS, suppress_defaults: bool = False) -> None:
    """Add the flags of the RunOptions fields `names` to `parser`. With `suppress_defaults`,
    a flag that is not given leaves no attribute (so that it can override another source)."""
    for spec in fields(RunOptions):
        if spec.name not in names:
            continue
        default = argparse.SUPPRESS if suppress_defaults else spec.default
        kwargs: dict[str, Any] = {"dest": spec.name, "help": spec.metadata["help"], "default": default}
        if spec.metadata["type"] is None:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = spec.metadata["type"]
            if spec.metadata["choices"] is not None:
                kwargs["choices"] = spec.metadata["choices"]
        parser.add_argument(flag(spec.name), **kwargs)


def parse_run_options(argv: Sequence[str] | None = None, exit: bool = True) -> RunOptions:
    """RunOptions from `run.py` arguments. On an invalid argument, print the usage and exit
    with status 2 (argparse's behaviour), or raise OptionError when `exit` is False."""
    parser_class = argparse.ArgumentParser if exit else _RaisingParser
    parser = parser_class(
        prog="run.py",
        description="Train a rate-distortion autoencoder (Echo, VAE, IAF; rates in nats per example).",
    )
    add_run_flags(parser)
    return RunOptions(**vars(parser.parse_args(argv)))
