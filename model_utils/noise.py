"""Noise channels: the stochastic layer between encoder and decoder.

Each channel is a Keras 3 layer that takes the flattened encoder features h, [B, F], and
returns a dict of tensors, all [B, D] unless stated:

- ``z``: the latent sample passed to the decoder;
- ``z_mean`` and ``z_log_scale``: the per-example statistics saved with the results
  (f(x) and log s(x) for Echo; μ(x) and log σ(x) for the Gaussian and IAF channels);
- channel-specific terms the rate losses need (see each class).

Channels draw their noise from their own `keras.random.SeedGenerator` (`seed_generator`),
whose state is a variable read when the step runs: setting it reseeds a traced training
step without tracing it again (`model.RateDistortionModel.reseed`); each data-parallel
replica draws its own stream (`model_utils.seeds`).

`CHANNELS` maps the config's layer types to the classes.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

import echo_noise
from model_utils.activations import get_activation
from model_utils.flows import flow_from_options
from model_utils.gaussian import log_normal_diag
from model_utils.seeds import next_seed

Outputs = dict[str, tf.Tensor]


@keras.saving.register_keras_serializable(package="echo")
class EchoChannel(keras.layers.Layer):
    """Echo noise z = f(x) + S(x)·ε (Brekelmans et al. 2019, Eq. 1), S(x) = clip·s(x).

    Two dense heads give f(x) (`fx_activation`, bounded by 1 unless `fx_clip` is set) and
    log s(x) (`sx_activation` of the pre-activation a: a log-sigmoid, log s = log σ(a), or
    `neg_square`, log s = −a², so that s(x) ≤ 1); `sx_bias` is the initial bias of a. The clip defaults to
    `echo_noise.echo_clip(L, M)` for the L = min(d_max, batch - 1) terms a batch of
    `batch` examples provides (L = d_max with replacement) and M = fx_clip or 1.

    `fx_centring` centres f(x) before the noise is built:

    - ``"none"``: f(x) as the head gives it;
    - ``"batch"`` (the reference's `echomc`): minus the batch mean of f(x), which contains
      the example itself, so ε is not exactly independent of x;
    - ``"running"``: minus c, a running mean of f(x) over the previous training batches
      (a zero-debiased exponential average with momentum `RUNNING_MOMENTUM`), fixed during
      a step and at evaluation. The channel is then exactly Echo's for the encoder
      f(x) − c, so the rate stays exact. In training the gradient is taken as if the
      centre were the batch mean (batch renormalisation's estimator, Ioffe 2017): the
      common mode of f gets no gradient, since c would remove it anyway.

    Outputs: ``z``, ``z_mean`` = f(x) (centred, for "running"), ``z_log_scale`` = log s(x)
    (without the clip). `rate(outputs)` is the exact I(X;Z) per example:
    -Σ_j (log clip + log s_j(x)), nats.
    """

    kind = "echo"
    RUNNING_MOMENTUM = 0.9
    FX_CENTRINGS = ("none", "batch", "running")

    def __init__(
        self,
        units: int,
        batch: int,
        d_max: int = 100,
        clip: float | None = None,
        fx_clip: float | None = None,
        replace: bool = False,
        fx_centring: str = "none",
        multiplicative: bool = False,
        fx_activation: str = "model_utils.activations.tanh16",
        sx_activation: str = "tensorflow.math.log_sigmoid",
        sx_bias: float = 0.0,
        kernel_initializer: str = "glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if fx_centring not in self.FX_CENTRINGS:
            raise ValueError(f"fx_centring must be one of {', '.join(self.FX_CENTRINGS)}, got {fx_centring!r}")
        self.units = units
        self.batch = batch
        self.d_max = d_max
        self.fx_clip = fx_clip
        fx_bound = float(fx_clip) if fx_clip is not None else 1.0
        self.clip = clip if clip is not None else echo_noise.echo_clip(
            echo_noise.echo_terms(batch, d_max, replace), fx_bound
        )
        self.replace = replace
        self.fx_centring = fx_centring
        self.multiplicative = multiplicative
        self.fx_activation = fx_activation
        self.sx_activation = sx_activation
        self.kernel_initializer = kernel_initializer
        self.seed_generator = keras.random.SeedGenerator(0)
        self.fx_head = keras.layers.Dense(
            units, activation=get_activation(fx_activation), kernel_initializer=kernel_initializer, name="fx",
            dtype=self.dtype_policy,
        )
        # The pre-activation a is kept apart from the activation so that the channel's
        # health can report d log s/da (`health`).
        self.sx_bias = sx_bias
        self.sx_head = keras.layers.Dense(units, kernel_initializer=kernel_initializer,
                                          bias_initializer=keras.initializers.Constant(sx_bias), name="log_sx",
                                          dtype=self.dtype_policy)
        self.log_scale = get_activation(sx_activation)

    def build(self, input_shape):
        self.fx_head.build(input_shape)
        self.sx_head.build(input_shape)
        if self.fx_centring == "running":
            # The exponential average of the batch means of f(x) and its number of updates.
            # Replicas of a data-parallel step each update them with their own batch: averaged.
            self.fx_average = self.add_weight(shape=(self.units,), initializer="zeros", trainable=False,
                                              aggregation="mean", name="fx_average")
            self.fx_updates = self.add_weight(shape=(), initializer="zeros", trainable=False, aggregation="mean",
                                              name="fx_updates")

    def call(self, h: tf.Tensor, training: bool | None = None) -> Outputs:
        h = self.full_batch(h)
        fx = self.encode_mean(h, training)
        log_sx = self.log_scale(self.sx_head(h))
        return {"z": self._echo_sample(fx, log_sx), "z_mean": fx, "z_log_scale": log_sx}

    def full_batch(self, h: tf.Tensor) -> tf.Tensor:
        """h [B, F], once B is known to be the config's `batch`: ValueError when B is known
        while tracing, else an assertion that every op of the channel waits for (so that
        its InvalidArgumentError, not a shape error of another op, reaches the user). The
        clip, hence the exact rate, is computed for batches of `batch`."""
        size = h.shape[0]
        # No quotes in the message: TensorFlow escapes them in an assertion's text.
        explanation = (f"examples reached the channel, but the batch of the config is {self.batch}: Echo noise has its "
                       f"clip ({self.clip:.6g}) and exact rate for batches of {self.batch}, and the framework trains "
                       "and evaluates in full batches of that size (set batch in the config to use another)")
        if size is not None:
            if size != self.batch:
                raise ValueError(f"Echo noise: a batch of {size} {explanation}")
            return h
        size = tf.shape(h)[0]
        check = tf.debugging.Assert(tf.equal(size, self.batch), ["Echo noise: a batch of", size, explanation])
        with tf.control_dependencies([check]):
            return tf.identity(h)

    def encode_mean(self, h: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """f(x) [B, D], centred by the running mean for "running" (which a training call
        then updates with this batch, after reading it)."""
        fx = self.fx_head(h)
        if self.fx_centring != "running":
            return fx
        centre = tf.math.divide_no_nan(self.fx_average, 1.0 - self.RUNNING_MOMENTUM ** self.fx_updates)
        if not training:
            return fx - centre
        batch_mean = tf.reduce_mean(fx, axis=0)
        self.fx_average.assign(self.RUNNING_MOMENTUM * self.fx_average + (1.0 - self.RUNNING_MOMENTUM) * tf.stop_gradient(batch_mean))
        self.fx_updates.assign_add(1.0)
        # The value is f − c exactly (x − x is exactly 0 in floating point); the gradient is
        # that of f − batch mean, as in batch renormalisation (Ioffe 2017): without it the
        # encoder chases with f's common mode an offset that c keeps removing, and f drifts
        # into tanh's saturation.
        return (fx - centre) + (tf.stop_gradient(batch_mean) - batch_mean)

    def noise(self, h: tf.Tensor) -> tf.Tensor:
        """Echo noise ε [B, D] for the batch's features h: a draw of z's own distribution,
        the aggregate posterior q(z), independent of every x in the batch (Eq. 2)."""
        h = self.full_batch(h)
        return self._echo_sample(self.encode_mean(h), self.log_scale(self.sx_head(h)), return_noise=True)

    def health(self, h: tf.Tensor) -> dict[str, tf.Tensor]:
        """How the channel stands on one batch of features h [B, F] (no update, nothing
        trained). Scalars, each a mean over the batch's examples and units unless stated:

        - ``saturated``: the fraction of log s(x) entries whose slope d log s/da is exactly
          0 in float32 (a log-sigmoid past a ≈ 87): no gradient reaches their a;
        - ``at_floor``: the fraction with −log s(x) < 0.01 nats, units within 0.01 nats of
          the rate's floor −log clip, which pass almost nothing about x;
        - ``log_sx``: the mean log s(x);
        - ``fx_mean``, ``fx_spread``: over units, the mean |batch mean of f_j(x)| and the
          mean batch standard deviation of f_j(x);
        - ``noise_mean``, ``noise_spread``: the same for the echo noise ε;

        and ``rate_per_dim`` [D]: −(log clip + batch mean of log s_j(x)), nats per example,
        whose sum is the batch's rate.
        """
        h = self.full_batch(h)
        fx = self.encode_mean(h)
        pre_activation = self.sx_head(h)
        with tf.GradientTape() as tape:
            tape.watch(pre_activation)
            log_sx = self.log_scale(pre_activation)
        slope = tape.gradient(log_sx, pre_activation)
        noise = self._echo_sample(fx, log_sx, return_noise=True)
        fraction = lambda condition: tf.reduce_mean(tf.cast(condition, tf.float32))  # noqa: E731
        return {
            "saturated": fraction(tf.equal(slope, 0.0)),
            "at_floor": fraction(-log_sx < 0.01),
            "log_sx": tf.reduce_mean(log_sx),
            "fx_mean": tf.reduce_mean(tf.abs(tf.reduce_mean(fx, axis=0))),
            "fx_spread": tf.reduce_mean(tf.math.reduce_std(fx, axis=0)),
            "noise_mean": tf.reduce_mean(tf.abs(tf.reduce_mean(noise, axis=0))),
            "noise_spread": tf.reduce_mean(tf.math.reduce_std(noise, axis=0)),
            "rate_per_dim": -(math.log(self.clip) + tf.reduce_mean(log_sx, axis=0)),
        }

    def _echo_sample(self, fx: tf.Tensor, log_sx: tf.Tensor, return_noise: bool = False) -> tf.Tensor:
        return echo_noise.echo_sample(
            [fx, log_sx],
            clip=self.clip,
            d_max=self.d_max,
            batch=self.batch,
            multiplicative=self.multiplicative,
            echo_mc=self.fx_centring == "batch",
            replace=self.replace,
            fx_clip=self.fx_clip,
            return_noise=return_noise,
            set_batch=False,
            seed=next_seed(self.seed_generator),
        )

    def rate(self, outputs: Outputs) -> tf.Tensor:
        """I(X;Z) per example, [B], in nats."""
        return tf.reduce_sum(echo_noise.echo_loss(outputs["z_log_scale"], clip=self.clip), axis=-1)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "batch": self.batch,
            "d_max": self.d_max,
            "clip": self.clip,
            "fx_clip": self.fx_clip,
            "replace": self.replace,
            "fx_centring": self.fx_centring,
            "multiplicative": self.multiplicative,
            "fx_activation": self.fx_activation,
            "sx_activation": self.sx_activation,
            "sx_bias": self.sx_bias,
            "kernel_initializer": self.kernel_initializer,
        }


class _GaussianHeads(keras.layers.Layer):
    """Dense heads for the mean μ(x) and log-variance log σ²(x) of a diagonal Gaussian."""

    def __init__(self, units: int, kernel_initializer: str = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_initializer = kernel_initializer
        self.seed_generator = keras.random.SeedGenerator(0)
        self.mean_head = keras.layers.Dense(
            units, kernel_initializer=kernel_initializer, name="z_mean", dtype=self.dtype_policy
        )
        self.log_var_head = keras.layers.Dense(
            units, kernel_initializer=kernel_initializer, name="z_log_var", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.mean_head.build(input_shape)
        self.log_var_head.build(input_shape)

    def gaussian_parameters(self, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(μ(x), log σ²(x)), each [B, D], of the Gaussian before any flow."""
        return self.mean_head(h), self.log_var_head(h)

    def _base_sample(self, h: tf.Tensor) -> Outputs:
        mean, log_var = self.gaussian_parameters(h)
        z0 = mean + tf.exp(0.5 * log_var) * tf.random.stateless_normal(
            tf.shape(mean), next_seed(self.seed_generator), dtype=mean.dtype
        )
        return {"z0": z0, "z_mean": mean, "z_log_var": log_var, "z_log_scale": 0.5 * log_var}

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "kernel_initializer": self.kernel_initializer}


@keras.saving.register_keras_serializable(package="echo")
class GaussianChannel(_GaussianHeads):
    """Diagonal Gaussian noise z = μ(x) + σ(x)·ε, ε ~ N(0, I) (the VAE's reparameterization).

    Outputs: ``z``, ``z0`` (= z), ``log_det`` (zeros [B]: no flow), ``log_q`` = log q(z|x)
    [B], ``z_mean`` = μ, ``z_log_var`` = log σ², ``z_log_scale`` = log σ.
    """

    kind = "gaussian"

    def call(self, h: tf.Tensor, training: bool | None = None) -> Outputs:
        outputs = self._base_sample(h)
        outputs["z"] = outputs["z0"]
        outputs["log_det"] = tf.zeros_like(outputs["z0"][:, 0])
        outputs["log_q"] = log_normal_diag(outputs["z0"], outputs["z_mean"], outputs["z_log_var"])
        return outputs

    def push_forward(self, z0: tf.Tensor) -> tf.Tensor:
        """z for base points z0 [B, D]: the identity (no flow)."""
        return z0


@keras.saving.register_keras_serializable(package="echo")
class IAFChannel(_GaussianHeads):
    """Inverse autoregressive flow encoder (Kingma et al. 2016).

    z_0 = μ(x) + σ(x)·ε, then z = T(z_0) through the flow `flow` describes
    ({"steps", "hidden_units", "activation", "mean_only"}, see `flow_from_options`): MADE-based
    affine autoregressive transforms whose parameters are shared by all x, as in the
    reference implementation. By the change of variables,

        log q(z|x) = log N(z_0; μ(x), σ²(x)) - log|det ∂T/∂z_0|.

    Outputs: ``z``, ``z0``, ``log_det`` = log|det ∂T/∂z_0| [B], ``log_q`` = log q(z|x) [B],
    ``z_mean``, ``z_log_var`` and ``z_log_scale`` of the base Gaussian.
    """

    kind = "iaf"

    def __init__(self, units: int, flow: dict, kernel_initializer: str = "glorot_uniform", **kwargs):
        super().__init__(units, kernel_initializer=kernel_initializer, **kwargs)
        self.flow_options = dict(flow)
        self.flow = flow_from_options(self.flow_options, name="iaf", dtype=self.dtype_policy)

    def build(self, input_shape):
        super().build(input_shape)
        self.flow.build((input_shape[0], self.units))

    def call(self, h: tf.Tensor, training: bool | None = None) -> Outputs:
        outputs = self._base_sample(h)
        outputs["z"], outputs["log_det"] = self.flow(outputs["z0"])
        outputs["log_q"] = (
            log_normal_diag(outputs["z0"], outputs["z_mean"], outputs["z_log_var"]) - outputs["log_det"]
        )
        return outputs

    def push_forward(self, z0: tf.Tensor) -> tf.Tensor:
        """z = T(z_0) for base points z0 [B, D]."""
        return self.flow(z0)[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "flow": self.flow_options}


CHANNELS: dict[str, type[keras.layers.Layer]] = {
    "echo": EchoChannel,
    "vae": GaussianChannel,
    "add": GaussianChannel,
    "iaf": IAFChannel,
}
