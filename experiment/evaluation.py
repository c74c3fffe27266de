"""A trained model's scores on a set of images, in nats per example: the mean of every
reported term, the ELBO, the encoder's statistics and, on request, the information
measures of `experiment.likelihood`."""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf

from datasets.pipeline import evaluation_pipeline, in_data_order
from experiment.likelihood import has_tractable_posterior, information_scores
from model import RateDistortionModel

STATISTICS = ("z_mean", "z_log_scale", "z")


def information_measures(model: RateDistortionModel, x: np.ndarray, rate: float, k: int | None, batch: int,
                         order_seed: int) -> dict[str, float]:
    """I(X;Z), the marginal gap, the active units and, given K, the importance-weighted NLL
    with K samples (channels with a tractable q(z|x)) on the test images x
    (`experiment.likelihood`), in batches in the random order `order_seed` fixes, plus
    ``information_size``, the number of images used."""
    tractable = has_tractable_posterior(model)
    if k is not None and not tractable:
        print(f"note: --iw: {model.channel.kind} noise has no tractable q(z|x) to weight samples with, so there is no "
              "importance-weighted likelihood; I(X;Z) is its exact rate, and the active units are measured",
              file=sys.stderr, flush=True)
    scores = information_scores(model, x, rate, k if tractable else None, batch, order_seed)
    return {**scores, "information_size": len(x)}


def scores_line(scores: dict[str, float]) -> str:
    """'rate R, distortion D, -ELBO E[, NLL (IW, K=k) L, I(X;Z) I, active units A,
    distortion at E[z|x] M]'."""
    parts = [f"rate {scores['rate']:.3f}", f"distortion {scores['distortion']:.3f}", f"-ELBO {-scores['elbo']:.3f}"]
    if "nll_iw" in scores:
        parts.append(f"NLL (IW, K={scores['nll_iw_k']}) {scores['nll_iw']:.3f}")
    if "mutual_information" in scores:
        parts.append(f"I(X;Z) {scores['mutual_information']:.3f}")
    if "active_units" in scores:
        parts.append(f"active units {scores['active_units']}")
    if "distortion_at_mean" in scores:
        parts.append(f"distortion at E[z|x] {scores['distortion_at_mean']:.3f}")
    return ", ".join(parts)


def evaluate(model: RateDistortionModel, x: np.ndarray, batch: int, order_seed: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """One pass over x in full batches, in the random order `order_seed` fixes (each batch
    a random sample of x, as Echo's noise needs; the final, overlapping batch counts only
    its new examples): the per-example means of every reported term, in nats, plus the
    ELBO; and the encoder's z_mean, z_log_scale and a sample z for every example, each
    [N, D], row i for x[i]."""
    step = tf.function(model.terms_and_outputs)
    totals: dict[str, float] = {}
    statistics: dict[str, list[np.ndarray]] = {name: [] for name in STATISTICS}
    for images, weights in evaluation_pipeline(x, batch, order_seed):
        terms, outputs = step(images)
        weights = weights.numpy().astype(np.float64)
        for name, values in terms.items():
            totals[name] = totals.get(name, 0.0) + float(weights @ values.numpy().astype(np.float64))
        for name in STATISTICS:
            statistics[name].append(outputs[name].numpy()[weights > 0])
    scores = {name: total / len(x) for name, total in totals.items()}
    scores["elbo"] = -(scores["rate"] + scores["distortion"])
    return scores, {name: in_data_order(np.concatenate(parts), order_seed) for name, parts in statistics.items()}

