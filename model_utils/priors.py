"""Marginals p(z) for the Gaussian and IAF channels, as log-densities in nats, [B].

- the standard Gaussian N(0, I) (`model_utils.gaussian.log_standard_normal`);
- `MAFMarginal`: a masked autoregressive flow density (Papamakarios et al. 2017) trained
  jointly with the autoencoder;
- `VampPrior`: the mixture of the encoder's posteriors at learned pseudo-inputs
  (Tomczak & Welling 2018).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import keras
import tensorflow as tf

from model_utils.flows import flow_from_options
from model_utils.gaussian import LOG_2PI, log_standard_normal


@keras.saving.register_keras_serializable(package="echo")
class MAFMarginal(keras.layers.Layer):
    """log p(z) = log N(u; 0, I) + log|det ∂u/∂z| with u = T(z), T the flow `flow` describes
    ({"steps", "hidden_units", "activation", "mean_only"}, see `flow_from_options`).

    Input z [B, D]; output log p(z) [B], in nats.
    """

    def __init__(self, flow: dict, **kwargs):
        super().__init__(**kwargs)
        self.flow_options = dict(flow)
        self.flow = flow_from_options(self.flow_options, name="maf", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])
        self.flow.build(input_shape)

    def call(self, z: tf.Tensor) -> tf.Tensor:
        u, log_det = self.flow(z)
        return log_standard_normal(u) + log_det

    def sample(self, n: int, model=None) -> tf.Tensor:
        """n draws z = T⁻¹(u), u ~ N(0, I), [n, D] (the flow's sequential inverse)."""
        return self.flow.inverse(tf.random.normal((n, self.latent_dim), dtype=self.compute_dtype))

    def describe(self) -> str:
        return "the MAF marginal p(z)"

    def get_config(self) -> dict:
        return {**super().get_config(), "flow": self.flow_options}


GaussianEncoder = Callable[[tf.Tensor], "tuple[tf.Tensor, tf.Tensor]"]


@keras.saving.register_keras_serializable(package="echo")
class VampPrior(keras.layers.Layer):
    """p(z) = (1/K) Σ_k q(z | u_k) with K learned pseudo-inputs u_k in [0, 1]^pseudo_input_shape.

    For a channel z = T(z_0), z_0 ~ N(μ(x), σ²(x)), with a flow T that does not depend on
    x (identity for the Gaussian channel, the IAF otherwise), the change of variables is
    the same for every mixture component:

        log p(z) = logsumexp_k log N(z_0; μ(u_k), σ²(u_k)) - log K - log|det ∂T/∂z_0|.

    The pseudo-inputs are sigmoid(logits) so that they stay in the data's range.
    """

    def __init__(self, n_pseudo_inputs: int, pseudo_input_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.n_pseudo_inputs = n_pseudo_inputs
        self.pseudo_input_shape = tuple(pseudo_input_shape)
        self.logits = self.add_weight(
            name="pseudo_input_logits",
            shape=(n_pseudo_inputs, *self.pseudo_input_shape),
            initializer=keras.initializers.RandomNormal(stddev=0.5),
        )

    def pseudo_inputs(self) -> tf.Tensor:
        """The K pseudo-inputs, [K, *pseudo_input_shape], in (0, 1)."""
        return tf.sigmoid(self.logits)

    def log_prob(self, z0: tf.Tensor, log_det: tf.Tensor, encode: GaussianEncoder) -> tf.Tensor:
        """log p(z) [B] for base points z0 [B, D] and log|det ∂T/∂z_0| [B].

        `encode` maps images to the channel's (μ, log σ²), each [K, D].
        """
        mean, log_var = encode(self.pseudo_inputs())
        # [B, K]: log N(z0_b; μ_k, σ²_k), summed over the D latent dimensions.
        squared = tf.square(z0[:, None, :] - mean[None, :, :]) * tf.exp(-log_var)[None, :, :]
        log_components = -0.5 * tf.reduce_sum(LOG_2PI + log_var[None, :, :] + squared, axis=-1)
        return tf.reduce_logsumexp(log_components, axis=1) - math.log(self.n_pseudo_inputs) - log_det

    def sample(self, n: int, model) -> tf.Tensor:
        """n draws of z, [n, D]: a uniformly chosen pseudo-input u_k, z_0 ~ N(μ(u_k), σ²(u_k)),
        z = T(z_0) through `model.channel.push_forward`."""
        mean, log_var = model.gaussian_parameters_of_images(self.pseudo_inputs())
        chosen = tf.random.uniform((n,), maxval=self.n_pseudo_inputs, dtype=tf.int32)
        mean, log_var = tf.gather(mean, chosen), tf.gather(log_var, chosen)
        z0 = mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean), dtype=mean.dtype)
        return model.channel.push_forward(z0)

    def describe(self) -> str:
        return f"the VampPrior p(z) ({self.n_pseudo_inputs} pseudo-inputs)"

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "n_pseudo_inputs": self.n_pseudo_inputs,
            "pseudo_input_shape": list(self.pseudo_input_shape),
        }
