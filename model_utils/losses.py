"""Distortions and rate terms, per example, in nats.

Every function returns a tensor [B]. `DISTORTIONS` maps the config's ``recon`` names to
-log p(x|z); `LOSS_TYPES` maps the config's loss ``type`` names to the terms of the rate
and to penalties. Each loss type has a role:

- ``rate``: a complete rate on its own (Echo's exact I(X;Z), the VAE's KL);
- ``posterior``: E log q(z|x), to pair with exactly one ``marginal`` term -log p(z);
- ``penalty``: not part of the rate (MMD); `--beta` leaves its weight alone.

The reported rate is the unweighted sum of the rate, posterior and marginal terms:
E[log q(z|x) - log p(z)] for the Gaussian and IAF channels, I(X;Z) for Echo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import keras
import tensorflow as tf

from model_utils.gaussian import (
    LOG_2PI,
    kl_to_standard_normal,
    log_standard_normal,
    negative_entropy,
)
from model_utils.seeds import next_seed

Outputs = dict[str, tf.Tensor]

RATE, POSTERIOR, MARGINAL, PENALTY = "rate", "posterior", "marginal", "penalty"


class LossContext(Protocol):
    """What a loss term may use from the model besides the channel's outputs."""

    channel: object
    marginal: object
    seed_generator: keras.random.SeedGenerator

    def gaussian_parameters_of_images(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]: ...


# ---- distortions ------------------------------------------------------------------------


def bernoulli_distortion(x: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """-log p(x|z) = Σ_pixels BCE(x, sigmoid(logits)), computed from the logits for
    stability; x [B, H, W, C] in [0, 1], logits of the same shape."""
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits)
    return tf.reduce_sum(tf.reshape(cross_entropy, [tf.shape(x)[0], -1]), axis=-1)


def gaussian_distortion(x: tf.Tensor, mean: tf.Tensor) -> tf.Tensor:
    """-log N(x; x̂, I) = ½ Σ_pixels (x - x̂)² + (P/2) log 2π, for P pixels."""
    squared = tf.reshape(tf.square(x - mean), [tf.shape(x)[0], -1])
    return 0.5 * tf.reduce_sum(squared + LOG_2PI, axis=-1)


@dataclass(frozen=True)
class Distortion:
    compute: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    from_logits: bool  # True: the decoder's last activation must be the sigmoid, applied inside


DISTORTIONS: dict[str, Distortion] = {
    "bce": Distortion(bernoulli_distortion, from_logits=True),
    "mse": Distortion(gaussian_distortion, from_logits=False),
}


# ---- rate terms -------------------------------------------------------------------------


def echo_rate(outputs: Outputs, model: LossContext) -> tf.Tensor:
    """Echo's exact I(X;Z) per example: -Σ_j (log clip + log s_j(x))."""
    return model.channel.rate(outputs)


def kl_standard_normal(outputs: Outputs, model: LossContext) -> tf.Tensor:
    """KL(q(z|x) ‖ N(0, I)) in closed form."""
    return kl_to_standard_normal(outputs["z_mean"], outputs["z_log_var"])


def gaussian_log_posterior(outputs: Outputs, model: LossContext) -> tf.Tensor:
    """E_q log q(z|x) = -H[q(z|x)] in closed form for the diagonal Gaussian."""
    return negative_entropy(outputs["z_log_var"])


def iaf_log_posterior(outputs: Outputs, model: LossContext) -> tf.Tensor:
    """log q(z|x) of the IAF posterior at the sampled z (a one-sample estimate of E_q)."""
    return outputs["log_q"]


def standard_normal_nll(outputs: Outputs, model: LossContext) -> tf.Tensor:
    """-log N(z; 0, I) at the sampled z."""
    return -log_standard_normal(outputs["z"])


def maf_nll(outputs: Outputs, model: LossContext) -> tf.Tensor:
    """-log p(z) under the jointly trained MAF marginal, at the sampled z."""
    return -model.marginal(outputs["z"])


def vamp_nll(outputs: Outputs, model: LossContext) -> tf.Tensor:
    """-log p(z) under the VampPrior, at the sampled z."""
    return -model.marginal.log_prob(outputs["z0"], outputs["log_det"], model.gaussian_parameters_of_images)


def mmd_penalty(outputs: Outputs, model: LossContext, bw: float | None = None) -> tf.Tensor:
    """Squared MMD between the batch of z and as many draws from N(0, I) (InfoVAE, Zhao et
    al. 2019), unbiased U-statistic with the kernel k(a, b) = exp(-bw·‖a - b‖²),
    bw = 1/(2D) by default. A batch statistic: every example gets the batch's value."""
    z = outputs["z"]
    prior = tf.random.stateless_normal(tf.shape(z), next_seed(model.seed_generator), dtype=z.dtype)
    gamma = bw if bw is not None else 1.0 / (2.0 * float(z.shape[-1]))
    n = tf.cast(tf.shape(z)[0], z.dtype)

    def kernel_sum(a, b, exclude_diagonal):
        distances = tf.reduce_sum(tf.square(a[:, None, :] - b[None, :, :]), axis=-1)
        total = tf.reduce_sum(tf.exp(-gamma * distances))
        return total - n if exclude_diagonal else total

    within = (kernel_sum(z, z, True) + kernel_sum(prior, prior, True)) / (n * (n - 1.0))
    mmd = within - 2.0 * kernel_sum(z, prior, False) / (n * n)
    return tf.fill(tf.shape(z)[:1], mmd)


@dataclass(frozen=True)
class LossType:
    role: str
    channels: frozenset[str]  # the channel kinds (see model_utils.noise) it applies to
    compute: Callable[..., tf.Tensor]
    marginal: str | None = None  # the learned marginal it needs: "maf" or "vamp"
    # How results tables name the marginal p(z) the rate is measured against (rate and
    # marginal terms) or the regularizer added to it (penalties).
    label: str | None = None


_ANY_CHANNEL = frozenset({"echo", "gaussian", "iaf"})
_STOCHASTIC = frozenset({"gaussian", "iaf"})

LOSS_TYPES: dict[str, LossType] = {
    "echo": LossType(RATE, frozenset({"echo"}), echo_rate, label="none (exact rate)"),
    "vae": LossType(RATE, frozenset({"gaussian"}), kl_standard_normal, label="N(0, I)"),
    "gaussian_ent": LossType(POSTERIOR, frozenset({"gaussian"}), gaussian_log_posterior),
    "iaf": LossType(POSTERIOR, frozenset({"iaf"}), iaf_log_posterior),
    "gaussian_pdf": LossType(MARGINAL, _STOCHASTIC, standard_normal_nll, label="N(0, I)"),
    "maf": LossType(MARGINAL, _STOCHASTIC, maf_nll, marginal="maf", label="MAF"),
    "made_density": LossType(MARGINAL, _STOCHASTIC, maf_nll, marginal="maf", label="MAF"),
    "vamp": LossType(MARGINAL, _STOCHASTIC, vamp_nll, marginal="vamp", label="VampPrior"),
    "mmd": LossType(PENALTY, _ANY_CHANNEL, mmd_penalty, label="MMD"),
}


def marginal_name(loss_types: Sequence[str]) -> str:
    """The marginal of a config's losses as results tables name it, e.g. "VampPrior" or
    "N(0, I) + MMD"."""
    kinds = [LOSS_TYPES[name] for name in loss_types]
    marginals = [kind.label for kind in kinds if kind.role in (RATE, MARGINAL)]
    penalties = [kind.label for kind in kinds if kind.role == PENALTY]
    return " + ".join(marginals + penalties)
