"""Diagonal Gaussian densities, in nats. Every function sums over the last axis, so a
latent batch [B, D] gives one value per example, [B]."""

from __future__ import annotations

import math

import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def log_normal_diag(x: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """log N(x; mean, diag(exp(log_var))) = -½ Σ_j [log 2π + log σ²_j + (x_j - μ_j)²/σ²_j]."""
    return -0.5 * tf.reduce_sum(LOG_2PI + log_var + tf.square(x - mean) * tf.exp(-log_var), axis=-1)


def log_standard_normal(x: tf.Tensor) -> tf.Tensor:
    """log N(x; 0, I) = -½ Σ_j [log 2π + x_j²]."""
    return -0.5 * tf.reduce_sum(LOG_2PI + tf.square(x), axis=-1)


def kl_to_standard_normal(mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_j [μ_j² + σ²_j - 1 - log σ²_j] (Kingma & Welling 2014, App. B)."""
    return 0.5 * tf.reduce_sum(tf.square(mean) + tf.exp(log_var) - 1.0 - log_var, axis=-1)


def negative_entropy(log_var: tf.Tensor) -> tf.Tensor:
    """E_q log q(z|x) = -H[N(μ, σ²)] = -½ Σ_j [log 2π + 1 + log σ²_j]."""
    return -0.5 * tf.reduce_sum(LOG_2PI + 1.0 + log_var, axis=-1)
