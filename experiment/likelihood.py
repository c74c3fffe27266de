"""How a trained model is judged beyond its ELBO: the importance-weighted log-likelihood,
the mutual information I(X;Z) of its encoder, and its active units. Nats per example.

- `importance_weighted_log_likelihood` (Burda, Grosse & Salakhutdinov 2016, Eq. 8):

      log p(x) >= L_K(x) = E log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x),  z_k ~ q(z|x),

  a bound that tightens as K grows (L_1 is the ELBO) and tends to log p(x). Computed in
  log space, for examples in batches and samples in chunks, with a running logsumexp in
  float64, so that memory does not grow with K. Needs a tractable q(z|x): the Gaussian and
  IAF channels, under any marginal (N(0, I), MAF, VampPrior; MMD runs use N(0, I)).
- `mutual_information`: I(X;Z) = E_x E_q(z|x)[log q(z|x) − log q(z)], with the aggregate
  posterior q(z) replaced by the mixture (1/N) Σ_n q(z|x_n) over the N examples given (the
  test set), one z per example. Since an IAF's flow T is shared by all x, q(z|x_n) at
  z = T(z_0) is N(z_0; μ_n, σ_n²)/|det ∂T/∂z_0| for every n, so the determinant cancels and
  I(X;Z) = I(X;Z_0). The estimate is biased: the mixture contains x_i's own posterior, so
  each term is at most log N (9.21 nats for the 10,000 test images) and the estimate
  saturates near log N for an encoder whose posteriors do not overlap; for an I(X;Z) well
  below log N the bias is small (the tests bound it on a linear-Gaussian model). For Echo
  the rate is I(X;Z) exactly, and is what runs report.
- `active_units` (Burda et al. 2016, Sec. 5.2): the number of latent dimensions d whose
  Cov_x(E_q[z_d|x]) exceeds 0.01.
- `distortion_at_mean`: the distortion of the decoder at the conditional mean of the code,
  E_x[−log p(x | E[z|x])]: the distortion without the channel's noise, so that the test
  distortion minus it is what the noise costs. E[z|x] is μ(x) for the Gaussian channel,
  the mean of T(z_0) over draws for the IAF, and for Echo f(x) + S(x)·E[ε] with
  E[ε] = E[z] = E[f]/(1 − E[S]) per dimension (ε is distributed as z and independent of
  x; expectations over the examples given).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from datasets.pipeline import evaluation_pipeline, in_data_order

ACTIVITY_THRESHOLD = 0.01


def _log_weights(model, x: tf.Tensor, samples: int) -> tf.Tensor:
    """log p(x|z_k) + log p(z_k) − log q(z_k|x) for `samples` draws z_k ~ q(z|x) of every
    image of x [B, ...]: [samples, B]. The encoder's features are computed once."""
    batch = tf.shape(x)[0]
    features = model.encoder_features(x)
    outputs = model.channel(tf.tile(features, [samples, 1]))
    images = tf.tile(x, tf.concat([[samples], tf.ones(tf.rank(x) - 1, tf.int32)], axis=0))
    log_px_z = -model.distortion.compute(images, model.decode(outputs["z"]))
    log_w = log_px_z + model.log_marginal(outputs) - outputs["log_q"]
    return tf.reshape(log_w, [samples, batch])


def importance_weighted_log_likelihood(model, x: np.ndarray, k: int, batch: int = 100, chunk: int = 1000) -> np.ndarray:
    """L_K(x) for every image of x [N, ...], float64 [N], nats: K = `k` samples each, drawn
    `chunk` (examples × samples) at a time, examples `batch` at a time."""
    if not has_tractable_posterior(model):
        raise ValueError(f"the {model.channel.kind} channel has no tractable q(z|x) for importance weighting")
    samples_per_pass = max(1, min(k, chunk // batch))
    weights_of = tf.function(_log_weights, reduce_retracing=True)
    estimates = []
    for start in range(0, len(x), batch):
        images = tf.constant(x[start : start + batch])
        running_max = np.full(len(images), -np.inf)
        running_sum = np.zeros(len(images))
        for done in range(0, k, samples_per_pass):
            log_w = weights_of(model, images, min(samples_per_pass, k - done)).numpy().astype(np.float64)
            new_max = np.maximum(running_max, log_w.max(axis=0))
            running_sum = running_sum * np.exp(running_max - new_max) + np.exp(log_w - new_max).sum(axis=0)
            running_max = new_max
        estimates.append(running_max + np.log(running_sum) - math.log(k))
    return np.concatenate(estimates)


def has_tractable_posterior(model) -> bool:
    """Whether q(z|x) has a density we can evaluate (Gaussian and IAF channels; not Echo)."""
    return model.channel.kind in ("gaussian", "iaf")


def _log_normal_matrix(z0: np.ndarray, mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """[M, N]: log N(z0_m; μ_n, diag σ_n²) for every pair, by matrix products, float64."""
    precision = np.exp(-log_var)
    quadratic = (z0**2) @ precision.T - 2.0 * z0 @ (mean * precision).T + np.sum(mean**2 * precision, axis=1)
    return -0.5 * (z0.shape[1] * math.log(2 * math.pi) + np.sum(log_var, axis=1) + quadratic)


def posterior_samples(model, x: np.ndarray, batch: int, order_seed: int | None = None) -> dict[str, np.ndarray]:
    """One pass of the channel over x [N, ...] in full batches of `batch` (Echo needs them),
    in the random order `order_seed` fixes (`datasets.pipeline.evaluation_pipeline`):
    z0, z_mean, z_log_var (for Echo z_mean = f(x) and z_log_scale = log s(x)), each [N, D],
    float64, row i for x[i]."""
    names = ("z0", "z_mean", "z_log_var") if has_tractable_posterior(model) else ("z_mean", "z_log_scale")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    encode = tf.function(model.encode)
    for images, weights in evaluation_pipeline(x, batch, order_seed):
        outputs = encode(images)
        kept = weights.numpy() > 0
        for name in names:
            parts[name].append(outputs[name].numpy().astype(np.float64)[kept])
    return {name: in_data_order(np.concatenate(values), order_seed) for name, values in parts.items()}


def mutual_information(z0: np.ndarray, mean: np.ndarray, log_var: np.ndarray, block: int = 256) -> float:
    """The estimate of I(X;Z) described above, nats, from one z0 ~ N(μ_i, σ_i²) per example
    and the posteriors' parameters, each [N, D]."""
    n = len(z0)
    total = 0.0
    for start in range(0, n, block):
        rows = slice(start, start + block)
        log_q_all = _log_normal_matrix(z0[rows], mean, log_var)  # [block, N]
        own = log_q_all[np.arange(log_q_all.shape[0]), np.arange(start, start + log_q_all.shape[0])]
        peak = log_q_all.max(axis=1)
        log_mixture = peak + np.log(np.exp(log_q_all - peak[:, None]).sum(axis=1)) - math.log(n)
        total += float(np.sum(own - log_mixture))
    return total / n


def active_units(conditional_means: np.ndarray, threshold: float = ACTIVITY_THRESHOLD) -> int:
    """The number of dimensions of E_q[z|x] [N, D] whose variance over x exceeds `threshold`."""
    return int(np.sum(np.var(conditional_means, axis=0) > threshold))


def conditional_means(model, x: np.ndarray, posterior: dict[str, np.ndarray], samples: int = 32, batch: int = 100) -> np.ndarray:
    """E_q[z|x] [N, D]: μ(x) for the Gaussian channel, f(x) for Echo (as Burda et al. use the
    mean of the encoder), and for the IAF the mean of T(z_0) over `samples` draws."""
    if model.channel.kind != "iaf":
        return posterior["z_mean"]

    @tf.function(reduce_retracing=True)
    def mean_of_draws(images):
        features = model.encoder_features(images)
        draws = model.channel(tf.tile(features, [samples, 1]))["z"]
        return tf.reduce_mean(tf.reshape(draws, [samples, tf.shape(images)[0], -1]), axis=0)

    return np.concatenate([mean_of_draws(tf.constant(x[start : start + batch])).numpy().astype(np.float64)
                           for start in range(0, len(x), batch)])


def mean_codes(model, posterior: dict[str, np.ndarray], means: np.ndarray) -> np.ndarray:
    """E[z|x] [N, D] (see `distortion_at_mean`): the `conditional_means` `means` for the
    Gaussian and IAF channels; for Echo f(x) + S(x)·E[f]/(1 − E[S]), S(x) = clip·s(x)."""
    if model.channel.kind != "echo":
        return means
    f, scale = posterior["z_mean"], model.channel.clip * np.exp(posterior["z_log_scale"])
    return f + scale * (f.mean(axis=0) / (1.0 - scale.mean(axis=0)))


def distortion_at_mean(model, x: np.ndarray, codes: np.ndarray, batch: int = 100) -> float:
    """E_x[−log p(x | z)] at the codes z = E[z|x] [N, D] of the examples x, nats per example
    (for multiplicative Echo noise, at exp of them, the noise's mean in its log domain)."""
    decoder_input = np.exp(codes) if getattr(model.channel, "multiplicative", False) else codes
    distortion = tf.function(lambda images, z: model.distortion.compute(images, model.decode(z)), reduce_retracing=True)
    total = sum(float(tf.reduce_sum(distortion(tf.constant(x[start : start + batch]),
                                               tf.constant(decoder_input[start : start + batch], tf.float32))))
                for start in range(0, len(x), batch))
    return total / len(x)


def information_scores(model, x: np.ndarray, rate: float, k: int | None, batch: int = 100,
                       order_seed: int | None = None) -> dict[str, float]:
    """The scores a results pickle stores, for test images x and the run's test rate:
    ``mutual_information``, ``marginal_gap`` = rate − I(X;Z) (Gaussian and IAF channels),
    ``active_units``, ``distortion_at_mean``, and with K = `k` ``nll_iw`` = −mean L_K(x) and
    ``nll_iw_k``. For Echo,
    ``mutual_information`` is its exact rate. The channel sees x in batches in the order
    `order_seed` fixes (see `posterior_samples`)."""
    posterior = posterior_samples(model, x, batch, order_seed)
    means = conditional_means(model, x, posterior, batch=batch)
    scores: dict[str, float] = {
        "active_units": active_units(means),
        "distortion_at_mean": distortion_at_mean(model, x, mean_codes(model, posterior, means), batch),
    }
    if not has_tractable_posterior(model):
        scores["mutual_information"] = rate
        return scores
    scores["mutual_information"] = mutual_information(posterior["z0"], posterior["z_mean"], posterior["z_log_var"])
    scores["marginal_gap"] = rate - scores["mutual_information"]
    if k is not None:
        scores["nll_iw"] = -float(np.mean(importance_weighted_log_likelihood(model, x, k, batch)))
        scores["nll_iw_k"] = k
    return scores
