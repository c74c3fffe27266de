"""Densities, distortions, rate terms and schedules against closed forms and SciPy."""

import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from scipy.special import logsumexp

from model_utils import gaussian
from model_utils.losses import bernoulli_distortion, gaussian_distortion, mmd_penalty
from model_utils.priors import MAFMarginal, VampPrior
from model_utils.schedules import alemi_lr_sched, learning_rate_schedule

RNG = np.random.default_rng(0)


def test_gaussian_log_density_matches_scipy():
    x, mean, log_var = RNG.normal(size=(3, 5, 4))
    expected = stats.norm.logpdf(x, loc=mean, scale=np.exp(0.5 * log_var)).sum(axis=-1)
    np.testing.assert_allclose(gaussian.log_normal_diag(x, mean, log_var), expected, rtol=1e-10)
    np.testing.assert_allclose(gaussian.log_standard_normal(x), stats.norm.logpdf(x).sum(axis=-1), rtol=1e-10)


def test_kl_and_negative_entropy_match_monte_carlo_estimates():
    mean, log_var = np.array([[0.5, -1.0, 2.0]]), np.array([[0.3, -0.7, 0.1]])
    samples = mean + np.exp(0.5 * log_var) * RNG.standard_normal((200_000, 3))
    log_q = stats.norm.logpdf(samples, mean, np.exp(0.5 * log_var)).sum(axis=-1)
    log_p = stats.norm.logpdf(samples).sum(axis=-1)
    assert float(gaussian.kl_to_standard_normal(mean, log_var)[0]) == pytest.approx((log_q - log_p).mean(), abs=0.02)
    assert float(gaussian.negative_entropy(log_var)[0]) == pytest.approx(log_q.mean(), abs=0.02)


def test_bernoulli_distortion_is_the_summed_cross_entropy_in_nats():
    x = (RNG.uniform(size=(2, 28, 28, 1)) < 0.3).astype(np.float64)
    logits = RNG.normal(size=(2, 28, 28, 1)) * 3
    p = 1 / (1 + np.exp(-logits))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(bernoulli_distortion(x, logits), expected, rtol=1e-10)


def test_bernoulli_distortion_stays_finite_for_saturated_logits():
    x = np.ones((1, 2, 2, 1))
    logits = np.full((1, 2, 2, 1), -200.0)
    assert float(bernoulli_distortion(x, logits)[0]) == pytest.approx(800.0)


def test_gaussian_distortion_is_the_unit_variance_negative_log_likelihood():
    x, mean = RNG.uniform(size=(2, 3, 28, 28, 1))
    expected = -stats.norm.logpdf(x, loc=mean).reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(gaussian_distortion(x, mean), expected, rtol=1e-10)


def _seeded(seed: int) -> SimpleNamespace:
    """A loss context with only the seed generator the MMD penalty draws its prior sample from."""
    return SimpleNamespace(seed_generator=keras.random.SeedGenerator(seed))


def _mmd_by_loops(z, prior, gamma):
    k = lambda a, b: math.exp(-gamma * float(((a - b) ** 2).sum()))  # noqa: E731
    n = len(z)
    within = sum(k(z[i], z[j]) + k(prior[i], prior[j]) for i in range(n) for j in range(n) if i != j)
    across = sum(k(z[i], prior[j]) for i in range(n) for j in range(n))
    return within / (n * (n - 1)) - 2 * across / n**2


def test_mmd_is_the_unbiased_statistic_against_fresh_prior_draws():
    z = RNG.normal(size=(6, 3))
    value = mmd_penalty({"z": tf.constant(z)}, _seeded(4), bw=0.3).numpy()
    prior = tf.random.stateless_normal(z.shape, _seeded(4).seed_generator.next(), dtype=tf.float64).numpy()
    assert value.shape == (6,) and np.all(value == value[0])
    assert value[0] == pytest.approx(_mmd_by_loops(z, prior, 0.3), rel=1e-10)


def test_mmd_separates_a_shifted_distribution_from_the_prior():
    tf.random.set_seed(5)
    matched = mmd_penalty({"z": tf.random.normal((400, 4))}, _seeded(5)).numpy()[0]
    shifted = mmd_penalty({"z": tf.random.normal((400, 4)) + 2.0}, _seeded(6)).numpy()[0]
    assert abs(matched) < 0.01 and shifted > 0.1


def test_vamp_prior_is_the_mixture_of_the_encoders_gaussians():
    prior = VampPrior(3, (2, 2, 1), dtype="float64")
    means, log_vars = RNG.normal(size=(2, 3, 4))

    def encode(images):
        assert images.shape == (3, 2, 2, 1) and np.all((images > 0) & (images < 1))
        return tf.constant(means), tf.constant(log_vars)

    z0, log_det = RNG.normal(size=(5, 4)), RNG.normal(size=5)
    components = np.stack(
        [stats.norm.logpdf(z0, means[k], np.exp(0.5 * log_vars[k])).sum(axis=-1) for k in range(3)], axis=1
    )
    expected = logsumexp(components, axis=1) - math.log(3) - log_det
    np.testing.assert_allclose(prior.log_prob(z0, log_det, encode), expected, rtol=1e-10)


def test_maf_marginal_integrates_to_one():
    marginal = MAFMarginal({"steps": 2, "hidden_units": [8], "activation": "tanh", "mean_only": False}, dtype="float64")
    marginal.build((None, 2))
    for weight in marginal.weights:
        weight.assign(RNG.normal(scale=0.3, size=weight.shape))
    grid = np.linspace(-9, 9, 361)
    points = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    density = np.exp(marginal(points).numpy())
    assert density.sum() * (grid[1] - grid[0]) ** 2 == pytest.approx(1.0, abs=1e-3)


def test_alemi_schedule_holds_then_decays_linearly_to_zero_and_never_rises():
    rates = [alemi_lr_sched(epoch, 200) for epoch in range(200)]
    assert rates[0] == rates[99] == rates[100] == 3e-4
    assert rates[150] == pytest.approx(1.5e-4)
    assert rates[199] == pytest.approx(3e-6)
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))
    short = [alemi_lr_sched(epoch, 10) for epoch in range(10)]
    assert short[:6] == [3e-4] * 6 and short[9] == pytest.approx(0.6e-4)
    assert learning_rate_schedule(0.01)(7, 10) == 0.01
