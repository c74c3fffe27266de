"""Where a VampPrior training step's time goes: vae_vamp.json's step against vae.json's
(the same network with the N(0, I) marginal), split into what the method needs, encoding
its K = 750 pseudo-inputs forward and backward, and everything around it (the K-component
mixture density log p(z), its gradient, the logits' update).

    python -m bench.vamp_cost [--steps 5] [--rounds 9]

Prints per-call medians of alternating rounds in this one process, and the remainder
vamp - vae - pseudo-input encoding, the overhead that is not inherent to the method.
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import statistics

import numpy as np
import tensorflow as tf

from bench.timing import seconds_per_call
from model import build_model
from model_utils.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="calls per timing round")
    parser.add_argument("--rounds", type=int, default=9, help="alternating timing rounds")
    args = parser.parse_args()

    x = tf.constant((np.random.default_rng(0).uniform(size=(100, 28, 28, 1)) < 0.2).astype("float32"))
    vamp, vae = (build_model(load_config(name)) for name in ("vae_vamp.json", "vae.json"))

    @tf.function
    def encode_pseudo_inputs():
        with tf.GradientTape() as tape:
            mean, log_var = vamp.gaussian_parameters_of_images(vamp.marginal.pseudo_inputs())
            total = tf.reduce_sum(mean) + tf.reduce_sum(log_var)
        return tape.gradient(total, vamp.trainable_variables)

    vae_step, vamp_step = tf.function(vae.train_step), tf.function(vamp.train_step)
    timers = {
        "vae.json step": seconds_per_call(lambda: vae_step(x), args.steps),
        "vae_vamp.json step": seconds_per_call(lambda: vamp_step(x), args.steps),
        "750 pseudo-inputs, encoder forward + backward": seconds_per_call(encode_pseudo_inputs, args.steps),
    }
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(args.rounds):  # alternate, so that drifts of the machine hit all alike
        for name, one_round in timers.items():
            times[name].append(one_round())
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"VampPrior cost, batch 100, reference conv autoencoder (medians of {args.rounds} rounds of {args.steps} calls):")
    for name, seconds in medians.items():
        print(f"  {name:46s} {1000 * seconds:8.1f} ms")
    rest = medians["vae_vamp.json step"] - medians["vae.json step"] - medians["750 pseudo-inputs, encoder forward + backward"]
    print(f"  {'remainder (mixture density, its gradient, update)':46s} {1000 * rest:8.1f} ms "
          f"= {100 * rest / medians['vae_vamp.json step']:.1f} % of the VampPrior step")


if __name__ == "__main__":
    main()
