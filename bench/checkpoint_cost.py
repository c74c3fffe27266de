"""What checkpointing costs per epoch on the reference conv net: the time and bytes of one
checkpoint (written and restored), and the extra time of an epoch's first step after the
model is reseeded from (seed, epoch) (`RateDistortionModel.reseed`, which keeps the traced
training step), against a training step.

    python -m bench.checkpoint_cost [--config echo.json] [--rounds 7]

Prints medians over rounds, measured in this one process.
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from model import build_model
from experiment.checkpoints import TrainingState, restore_latest, save_checkpoint
from model_utils.config import load_config


def _seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="echo.json")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    config = load_config(args.config)
    model = build_model(config)
    batch = tf.data.Dataset.from_tensor_slices(np.random.default_rng(0).random((config.batch, *config.input_shape), np.float32) < 0.2)
    one_step = batch.map(lambda x: tf.cast(x, tf.float32)).batch(config.batch)
    model.fit(one_step, epochs=1, verbose=0, shuffle=False)  # build the optimizer's slots

    many_steps = one_step.repeat(21)
    state = TrainingState({"config": config.raw}, 1, {"loss": [1.0] * 200, "lr": [3e-4] * 200})
    writes, restores, reseeded, steady, longer = [], [], [], [], []
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory) / "run.checkpoint"
        for round_ in range(args.rounds):
            state = TrainingState(state.fingerprint, round_ + 1, state.history)
            writes.append(_seconds(lambda: save_checkpoint(folder, model, state)))
            restores.append(_seconds(lambda: restore_latest(folder, model, state.fingerprint)))
            model.reseed(round_)
            reseeded.append(_seconds(lambda: model.fit(one_step, epochs=1, verbose=0, shuffle=False)))
            steady.append(_seconds(lambda: model.fit(one_step, epochs=1, verbose=0, shuffle=False)))
            longer.append(_seconds(lambda: model.fit(many_steps, epochs=1, verbose=0, shuffle=False)))
        sizes = {path.name.split(".", 1)[1]: path.stat().st_size for path in folder.glob(f"epoch-{args.rounds:04d}.*")}

    step = (statistics.median(longer) - statistics.median(steady)) / 20
    reseed = statistics.median(reseeded) - statistics.median(steady)
    write = statistics.median(writes)
    print(f"{args.config}: {model.count_params():,} parameters, batch {config.batch}, {args.rounds} rounds, medians")
    print(f"  checkpoint files: weights and optimizer state {sizes['weights.h5'] / 1e6:.2f} MB, "
          f"history and fingerprint {sizes['state.pickle'] / 1e3:.1f} kB")
    print(f"  write {write:.3f} s, restore {statistics.median(restores):.3f} s")
    print(f"  first step after reseeding, beyond a steady one: {reseed:.3f} s; a training step: {1000 * step:.0f} ms")
    for steps in (80, 500):
        print(f"  an epoch of {steps} steps (~{steps * step:.0f} s): checkpoint + reseed {write + reseed:.2f} s = "
              f"{100 * (write + reseed) / (steps * step):.1f} %")


if __name__ == "__main__":
    main()
