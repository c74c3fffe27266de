"""The epochs of one run: seeded from (seed, epoch) alone, checkpointed and logged after each.

Each epoch's data order and noise are drawn from `epoch_seed(seed, epoch)`, so an epoch
does not depend on the epochs this process ran before it: a resumed run draws what an
uninterrupted one does. After every epoch an Echo channel's health is measured
(`experiment.health`), the state is checkpointed (`experiment.checkpoints`), then a row is
appended to the run's CSV (`experiment.epoch_csv`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import tensorflow as tf

from datasets.pipeline import evaluation_pipeline, training_pipeline
from experiment import epoch_csv
from experiment.checkpoints import TrainingState, save_checkpoint
from experiment.errors import EXIT_TERMINATED, EXIT_USAGE, RunError
from experiment.health import ChannelHealth, health_sample
from experiment.options import RunOptions
from experiment.signals import SignalCheck, raise_if_signalled
from model import RateDistortionModel, derived_seed
from model_utils.config import ExperimentConfig
from model_utils.schedules import learning_rate_schedule


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of everything random in one epoch (data order, noise), from the run's seed
    and the epoch alone; epoch = the number of epochs seeds the final evaluation."""
    return derived_seed(seed, epoch)


def evaluation_seed(seed: int, epochs: int) -> int:
    """The seed of the final evaluation, its noise and the random order of its batches, and
    of the validation batches' order (the same every epoch): the stream after the last
    epoch's, so that evaluating draws nothing any epoch drew."""
    return epoch_seed(seed, epochs)


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
        # Data-parallel replicas each take a batch of the config's size (`experiment.devices`).
        self.global_batch = config.batch * model.distribute_strategy.num_replicas_in_sync
        if len(arrays["train"]) < self.global_batch:
            raise RunError(f"the training set has {len(arrays['train'])} examples, fewer than one global batch of "
                           f"{self.global_batch} ({self.global_batch // config.batch} replicas × {config.batch})", EXIT_USAGE)
        self.health = None
        if config.channel.kind == "echo":
            self.health = ChannelHealth(model, health_sample(arrays["train"], config.batch, args.seed), config.batch)

    def run(self) -> None:
        """Train the remaining epochs. A loss that becomes NaN or infinite raises RunError."""
        schedule = learning_rate_schedule(self.config.lr)
        validation = None
        if self.arrays["val"] is not None:
            order_seed = evaluation_seed(self.args.seed, self.config.epochs)
            validation = evaluation_pipeline(self.arrays["val"], self.global_batch, order_seed)
        for epoch in range(self.state.epoch, self.config.epochs):
            seed_epoch(self.model, self.args.seed, epoch)
            scheduled = self.model.scheduled_weights(epoch)
            self.epoch_log.rate = schedule(epoch, self.config.epochs)
            self.model.optimizer.learning_rate = self.epoch_log.rate
            history = self.model.fit(
                training_pipeline(self.arrays["train"], self.global_batch, epoch_seed(self.args.seed, epoch)),
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
            extras = {**scheduled, **self.model.multiplier_values()}
            if self.health is not None:
                extras.update(self.health())
            self._log_to_tensorboard(epoch, extras)
            finished = self.state.after_epoch({**logs, **extras})
            save_checkpoint(self.checkpoints, self.model, finished)
            self.state = finished
            epoch_csv.append_last(self.csv_path, finished.history)

    def _log_to_tensorboard(self, epoch: int, values: dict[str, float]) -> None:
        """What Keras's callback does not see, one point per epoch under <dir>/channel: the
        scheduled β, the Lagrange multipliers and the channel's health."""
        if not self.args.tensorboard or not values:
            return
        writer = tf.summary.create_file_writer(str(Path(self.args.tensorboard) / "channel"))
        with writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=epoch)
        writer.close()

    def interruption(self, status: int) -> RunError:
        """The error that ends an interrupted run, saying what is kept and how to resume."""
        done = self.state.epoch
        kept = (f"the checkpoint of epoch {done} is kept in {self.checkpoints}: run the same command again to resume"
                if done else "no epoch had finished, so there is nothing to resume")
        signal_name = "SIGTERM" if status == EXIT_TERMINATED else "SIGINT"
        where = "while evaluating" if done == self.config.epochs else f"in epoch {done + 1} of {self.config.epochs}"
        return RunError(f"interrupted by {signal_name} {where}; {kept}", status)
