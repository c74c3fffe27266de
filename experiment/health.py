"""An Echo channel's health after every epoch: how many of its s(x) units are saturated or
at the rate's floor, log s(x), the rate of each latent dimension, and the size of f(x) and
of the echo noise (`model_utils.noise.EchoChannel.health`).

They are measured at the end of each epoch on a fixed random sample of the training images
(`HEALTH_IMAGES`, in full batches), with the model as it then is, so that epochs compare
like with like, and recorded in the history, the CSV and TensorBoard as ``echo_*`` values:
``echo_saturated``, ``echo_at_floor`` (fractions of the units), ``echo_log_sx``,
``echo_fx_mean``, ``echo_fx_spread``, ``echo_noise_mean``, ``echo_noise_spread``, and
``echo_rate_dim00`` … (nats per example, one per latent dimension). Measuring draws
noise, but each epoch is reseeded when it starts, so training is unchanged.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from model import RateDistortionModel

HEALTH_IMAGES = 1000


def health_sample(x: np.ndarray, batch: int, seed: int) -> np.ndarray:
    """The images health is measured on: a random sample of x, fixed by `seed`, of
    HEALTH_IMAGES rounded down to whole batches (at least one batch)."""
    size = max(batch, min(HEALTH_IMAGES, len(x)) // batch * batch)
    return x[np.random.default_rng(seed).permutation(len(x))[:size]]


def health_names(units: int) -> list[str]:
    """The history keys of the health of a channel with `units` latent dimensions."""
    scalars = ["saturated", "at_floor", "log_sx", "fx_mean", "fx_spread", "noise_mean", "noise_spread"]
    return [f"echo_{name}" for name in scalars] + [f"echo_rate_dim{j:02d}" for j in range(units)]


class ChannelHealth:
    """Measures an Echo model's channel health on fixed images; call it after each epoch."""

    def __init__(self, model: RateDistortionModel, images: np.ndarray, batch: int):
        self.images = images
        self.batch = batch
        self.measure_batch = tf.function(model.channel_health)

    def __call__(self) -> dict[str, float]:
        """The health values, each the mean over the sample's batches (history keys)."""
        totals: dict[str, np.ndarray] = {}
        batches = len(self.images) // self.batch
        for start in range(0, batches * self.batch, self.batch):
            for name, value in self.measure_batch(tf.constant(self.images[start : start + self.batch])).items():
                totals[name] = totals.get(name, 0.0) + value.numpy().astype(np.float64)
        means = {name: total / batches for name, total in totals.items()}
        health = {f"echo_{name}": float(value) for name, value in means.items() if name != "rate_per_dim"}
        health.update({f"echo_rate_dim{j:02d}": float(rate) for j, rate in enumerate(means["rate_per_dim"])})
        return health
