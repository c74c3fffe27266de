"""Echo's first training steps, traced: what drives its scale head, step by step.

Before each training step, on that step's batch, `gradient_paths` measures (without
changing any variable) the pre-activations a of the log s(x) head, f(x), the echo noise,
the encoder's features, and the gradient of the batch's summed loss with respect to log
s(x), split by the path through which log s(x) enters it:

- ``rate``: the rate term, −β·(log clip + log s(x)): exactly −β per entry;
- ``own_mean`` and ``own_deviation``: the example's own scale S(x) in z = f(x) + S(x)·ε,
  times the part of ε due to the batch mean of f (m) and to the deviations f − m;
- ``neighbours_mean`` and ``neighbours_deviation``: the example's S(x) inside its
  neighbours' noise (the products Π S(x⁽ᵏ⁾)), through the same two parts.

Echo noise is linear in f for a fixed draw of neighbours, so with one seed ε = ε(m) +
ε(f − m) exactly; each path gets its own copy of log s(x) to differentiate. A negative
gradient means that gradient descent raises log s(x): more noise, less rate. The noise of
the trace is drawn from its own stateless seeds, so training draws what it would without
the trace. Nats per example throughout.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import keras
import numpy as np
import tensorflow as tf

import echo_noise
from datasets.pipeline import training_pipeline
from experiment.data import prepare_data
from experiment.errors import EXIT_USAGE, RunError
from experiment.options import RunOptions
from experiment.training import epoch_seed
from model import RateDistortionModel, build_model, derived_seed
from model_utils.config import ExperimentConfig
from model_utils.losses import PENALTY
from model_utils.schedules import learning_rate_schedule

PATHS = ("rate", "own_mean", "own_deviation", "neighbours_mean", "neighbours_deviation")
TRACE_STREAM = 2**31 - 1  # the derived-seed index of the trace's own noise


def gradient_paths(model: RateDistortionModel, x: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
    """On the batch x of an Echo model: ``a``, ``slope`` (d log s/da), ``log_s``, ``f``,
    ``noise``, each [B, D]; ``features`` (the encoder's output h) [B, F]; ``distortion`` and
    ``rate`` [B]; and for every path of `PATHS`, as ``grad_<path>``, its share of
    d(Σ_batch loss)/d log s(x), [B, D]. `seed` [2] draws the neighbours."""
    channel = model.channel
    h = model.encoder_features(x)
    f = channel.encode_mean(h)
    if channel.fx_clip is not None:
        f = tf.clip_by_value(f, -channel.fx_clip, channel.fx_clip)
    if channel.fx_centring == "batch":
        f = f - tf.reduce_mean(f, axis=0, keepdims=True)
    a = channel.sx_head(h)
    with tf.GradientTape() as slope_tape:
        slope_tape.watch(a)
        log_s = channel.log_scale(a)
    slope = slope_tape.gradient(log_s, a)
    mean = tf.reduce_mean(f, axis=0, keepdims=True)
    log_clip = math.log(channel.clip)
    beta = sum(weight for _, weight, role, _ in model.loss_terms if role != PENALTY)
    beta = beta if model.rate_scale is None else beta * model.rate_scale

    def noise(values, log_scale):
        return echo_noise.echo_sample([values, log_scale], clip=channel.clip, d_max=channel.d_max, batch=channel.batch,
                                      replace=channel.replace, set_batch=False, return_noise=True, seed=seed)

    copies = {path: tf.identity(log_s) for path in PATHS}
    with tf.GradientTape() as tape:
        for copy in copies.values():
            tape.watch(copy)
        from_mean = noise(tf.broadcast_to(mean, tf.shape(f)), copies["neighbours_mean"])
        from_deviations = noise(f - mean, copies["neighbours_deviation"])
        z = (f + tf.exp(log_clip + copies["own_mean"]) * from_mean
             + tf.exp(log_clip + copies["own_deviation"]) * from_deviations)
        if channel.multiplicative:
            z = tf.exp(z)
        distortion = model.distortion.compute(x, model.decode(z))
        rate = -tf.reduce_sum(log_clip + copies["rate"], axis=-1)
        loss = tf.reduce_sum(distortion + beta * rate)
    gradients = tape.gradient(loss, list(copies.values()))
    return {"a": a, "slope": slope, "log_s": log_s, "f": f, "noise": from_mean + from_deviations, "features": h,
            "distortion": distortion, "rate": rate, **{f"grad_{path}": g for path, g in zip(PATHS, gradients)}}


def step_summary(paths: dict[str, np.ndarray]) -> dict[str, float]:
    """One step's numbers from `gradient_paths`: the batch's rate and distortion (nats per
    example), the median, 90th percentile and largest a, the fractions of saturated
    (slope exactly 0) and floored (−log s < 0.01) entries, the mean norm of the features,
    |batch mean| and batch spread of f and of the noise (means over units), and for each
    path its mean per entry, ``grad_<path>``, plus their ``grad_total``, the fraction of
    entries where the total is negative, and ``grad_total_on_a``, the mean of total · slope
    (what reaches a)."""
    a, log_s, slope = paths["a"], paths["log_s"], paths["slope"]
    total = sum(paths[f"grad_{path}"] for path in PATHS)
    summary = {
        "rate": paths["rate"].mean(), "distortion": paths["distortion"].mean(),
        "a_median": np.median(a), "a_p90": np.percentile(a, 90), "a_max": a.max(),
        "saturated": np.mean(slope == 0.0), "at_floor": np.mean(-log_s < 0.01),
        "features_norm": np.linalg.norm(paths["features"], axis=1).mean(),
        "f_mean": np.abs(paths["f"].mean(axis=0)).mean(), "f_spread": paths["f"].std(axis=0).mean(),
        "noise_mean": np.abs(paths["noise"].mean(axis=0)).mean(), "noise_spread": paths["noise"].std(axis=0).mean(),
        **{f"grad_{path}": paths[f"grad_{path}"].mean() for path in PATHS},
        "grad_total": total.mean(), "negative": np.mean(total < 0), "grad_total_on_a": np.mean(total * slope),
    }
    return {name: float(value) for name, value in summary.items()}


def trace_first_steps(config: ExperimentConfig, options: RunOptions, steps: int) -> Iterator[dict[str, Any]]:
    """The first `steps` training steps (at most one epoch) of the run that `config` and
    `options` describe, set up and seeded as `experiment.train_and_evaluate` sets up its
    first epoch; yields, for each step before it is taken, ``step`` (from 1) and its
    `step_summary`."""
    if config.channel.kind != "echo":
        raise RunError(f"the trace follows an Echo channel; this config's noise layer is {config.channel.type!r}",
                       EXIT_USAGE)
    _, arrays = prepare_data(options, config)
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(config)
    model.reseed(epoch_seed(options.seed, 0))
    model.scheduled_weights(0)
    model.optimizer.learning_rate = learning_rate_schedule(config.lr)(0, config.epochs)
    measure, train = tf.function(gradient_paths), tf.function(model.train_step)
    batches = training_pipeline(arrays["train"], config.batch, epoch_seed(options.seed, 0))
    stream = derived_seed(options.seed, TRACE_STREAM)
    for step, x in enumerate(batches.take(steps), start=1):
        paths = measure(model, x, tf.constant([stream, step], tf.int64))
        yield {"step": step, **step_summary({name: value.numpy().astype(np.float64) for name, value in paths.items()})}
        train((x,))
