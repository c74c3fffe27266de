"""The rate-distortion autoencoder built from a parsed config (`model_utils.config`).

    x ─ encoder layers ─ flatten ─ noise channel ─ z ─ decoder layers ─ p(x|z)
                                        └─ rate terms (with the marginal, if learned)

For every example the model computes, in nats:

- ``distortion`` = -log p(x|z) (the config's ``recon``);
- one term per configured loss (``echo``, ``vae``, ``gaussian_ent``, ``iaf``,
  ``gaussian_pdf``, ``maf``/``made_density``, ``vamp``, ``mmd``);
- ``rate`` = the unweighted sum of the rate terms (all but penalties): Echo's exact
  I(X;Z), or E[log q(z|x) - log p(z)] for the Gaussian and IAF channels;
- ``loss`` = distortion + Σ_k weight_k · term_k, the training objective; with an
  ``anneal_schedule`` the rate terms' weights are multiplied by the epoch's m(e)
  (`rate_scale`), and with ``lagrangian_fit`` each constraint adds (λ_c + ρ_c·ḡ_c) · g_c,
  its violation g_c (see `constraint_violation`) weighted by its multiplier plus the
  augmented Lagrangian's penalty ρ_c times the batch's mean violation ḡ_c (a constant for
  the gradient, which is then that of λ_c·ḡ_c + (ρ_c/2)·ḡ_c²).

The multipliers λ_c are learned by gradient ascent, one step per training step:
λ_c ← λ_c + lr_c · ḡ_c, kept >= 0 for inequality constraints (the method of multipliers,
Hestenes 1969 and Powell 1969, as GECO uses it, Rezende & Viola 2018). For an equality on
the rate, λ is the correction to β under which the rate meets the target, and ρ damps the
oscillation of the rate around it: the weight responds at once to a violation, not only
as λ accumulates it.

Training and evaluation report these as per-example means (`keras.Model.fit` logs them
under the same names). Evaluation batches carry weights so that a final, overlapping
batch counts each example once (see `datasets.pipeline.evaluation_pipeline`).
"""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
import tensorflow as tf

from model_utils.config import OPTIMIZERS, ConfigError, ConstraintSpec, ExperimentConfig
from model_utils.gaussian import log_standard_normal
from model_utils.losses import DISTORTIONS, LOSS_TYPES, MARGINAL, PENALTY
from model_utils.noise import CHANNELS
from model_utils.priors import MAFMarginal, VampPrior
from model_utils.schedules import learning_rate_schedule

_SPATIAL_LAYERS = {"Conv2D", "Conv2DTranspose"}


def build_marginal(config: ExperimentConfig) -> keras.layers.Layer | None:
    """The learned marginal p(z) the losses need: a MAF, a VampPrior, or None."""
    needed = {LOSS_TYPES[loss.type].marginal for loss in config.losses} - {None}
    if "maf" in needed:
        return MAFMarginal(config.channel.density, name="maf_marginal")
    if "vamp" in needed:
        return VampPrior(config.vamp_pseudo_inputs, config.input_shape, name="vamp_prior")
    return None


def derived_seed(seed: int, index: int) -> int:
    """A seed in [0, 2³²) for stream `index` of the run seeded by `seed`: independent
    streams for different indices (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([seed % 2**32, index]).generate_state(1)[0])


class RateDistortionModel(keras.Model):
    """Encoder, noise channel, decoder and rate terms of one experiment config."""

    def __init__(self, config: ExperimentConfig, **kwargs):
        super().__init__(**kwargs)
        self.experiment = config
        self.distortion = DISTORTIONS[config.recon]
        # Only these layers follow the config's precision; everything from the channel on is float32.
        self.encoder_layers = [spec.build(kernel_initializer=config.initializer, dtype=config.precision)
                               for spec in config.encoder]
        self.flatten = keras.layers.Flatten()
        self.channel = CHANNELS[config.channel.type](**config.channel.options, name="channel")
        self.marginal = build_marginal(config)
        latent_dim = config.channel.options["units"]
        first_spatial = config.decoder[0].type in _SPATIAL_LAYERS
        self.to_decoder = keras.layers.Reshape((1, 1, latent_dim) if first_spatial else (latent_dim,))
        last = len(config.decoder) - 1
        self.decoder_layers = [
            # The output activation is applied inside the distortion when it works from logits.
            spec.build(activation="linear" if i == last and self.distortion.from_logits else None,
                       kernel_initializer=config.initializer, dtype=config.precision)
            for i, spec in enumerate(config.decoder)
        ]
        self.loss_terms = [
            (loss.type, loss.weight, loss.role, partial(LOSS_TYPES[loss.type].compute, **loss.options))
            for loss in config.losses
        ]
        names = ["loss", "rate", "distortion"] + [loss.type for loss in config.losses]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.density_optimizer = None
        self.seed_generator = keras.random.SeedGenerator(0)  # the loss terms' draws (the MMD's prior sample)
        # Made only when used, so that other configs keep their weights (and parameter count).
        self.rate_scale = keras.Variable(1.0, trainable=False, name="rate_scale") if config.anneal else None
        self.multipliers = None
        if config.constraints:
            # Data-parallel replicas each take the step with their own batch: averaged.
            self.multipliers = keras.Variable(np.zeros(len(config.constraints), np.float32), trainable=False,
                                              aggregation="mean", name="lagrange_multipliers")

    def build(self, input_shape):
        """Build every layer, the marginal included, with a forward pass on a zero batch of
        the configured size (Echo noise needs a full batch); refuse a decoder that does not
        reproduce the input shape (ConfigError)."""
        probe = tf.zeros((self.experiment.batch, *input_shape[1:]))
        output_shape = tuple(self.call(probe).shape[1:])
        if output_shape != tuple(input_shape[1:]):
            raise ConfigError(
                self.experiment.source,
                "layers",
                f"the decoder produces images of shape {list(output_shape)}, but input_shape is {list(input_shape[1:])}",
            )
        self.per_example_terms(probe)

    # ---- forward ------------------------------------------------------------------------

    def encoder_features(self, x: tf.Tensor) -> tf.Tensor:
        h = x
        for layer in self.encoder_layers:
            h = layer(h)
        return tf.cast(self.flatten(h), tf.float32)

    def encode(self, x: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """The channel's outputs (``z``, ``z_mean``, ``z_log_scale``, ...) for images x."""
        return self.channel(self.encoder_features(x), training=training)

    def gaussian_parameters_of_images(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(μ, log σ²) of the channel's base Gaussian for images (the VampPrior's components)."""
        return self.channel.gaussian_parameters(self.encoder_features(images))

    def decode(self, z: tf.Tensor) -> tf.Tensor:
        """Decoder output for latents z [B, D]: logits when the distortion works from
        logits, the mean of p(x|z) otherwise; [B, *input_shape], float32."""
        h = self.to_decoder(z)
        for layer in self.decoder_layers:
            h = layer(h)
        return tf.cast(h, tf.float32)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.decode(self.encode(x, training)["z"])

    def log_marginal(self, outputs: dict[str, tf.Tensor]) -> tf.Tensor:
        """log p(z) [B], nats, at the channel's sample z under the model's marginal: that of
        its marginal loss term (N(0, I), the MAF or the VampPrior), or N(0, I) when the rate
        is the closed-form KL ("vae"). Gaussian and IAF channels only: Echo has no p(z)."""
        for _, _, role, compute in self.loss_terms:
            if role == MARGINAL:
                return -compute(outputs, self)
        return log_standard_normal(outputs["z"])

    def mean_image(self, z: tf.Tensor) -> tf.Tensor:
        """The mean of p(x|z) for latents z [B, D]: [B, *input_shape], in [0, 1] for a
        Bernoulli decoder."""
        decoded = self.decode(z)
        return tf.sigmoid(decoded) if self.distortion.from_logits else decoded

    def reconstruct(self, x: tf.Tensor) -> tf.Tensor:
        """The mean of p(x|z) for one z ~ q(z|x) per image of x (a full batch for Echo)."""
        return self.mean_image(self.encode(x)["z"])

    def draw_latents(self, n: int, x: tf.Tensor) -> tuple[tf.Tensor, str]:
        """n draws of z from the model's marginal, [n, D], and a phrase saying what they are.

        N(0, I), the MAF or the VampPrior for the Gaussian and IAF channels; for Echo, whose
        rate needs no marginal, Echo noise ε built from the encodings of the batch x (a full
        batch, n <= its size), which is a draw of the aggregate posterior q(z).
        """
        if self.channel.kind == "echo":
            if n > x.shape[0]:
                raise ValueError(f"{n} Echo draws need at least {n} encodings, got a batch of {x.shape[0]}")
            noise = self.channel.noise(self.encoder_features(x))[:n]
            return noise, f"Echo noise ε from {x.shape[0]} test encodings, a draw of the aggregate posterior q(z)"
        if self.marginal is not None:
            return self.marginal.sample(n, self), self.marginal.describe()
        units = self.experiment.channel.options["units"]
        return tf.random.normal((n, units)), "the marginal N(0, I)"

    def channel_health(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        """How an Echo channel stands on the batch of images x: saturated and floored
        units, log s(x), the rate per dimension, f(x) and the noise (`EchoChannel.health`)."""
        return self.channel.health(self.encoder_features(x))

    def per_example_terms(self, x: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Every reported quantity for each example of the batch x, each [B], in nats."""
        return self.terms_and_outputs(x, training)[0]

    def terms_and_outputs(self, x: tf.Tensor, training: bool = False) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        """`per_example_terms` and the channel's outputs (``z``, ``z_mean``, ...) of one pass."""
        outputs = self.encode(x, training)
        terms = {"distortion": self.distortion.compute(x, self.decode(outputs["z"]))}
        rate = tf.zeros_like(terms["distortion"])
        loss = terms["distortion"]
        for name, weight, role, compute in self.loss_terms:
            terms[name] = compute(outputs, self)
            if role == PENALTY:
                loss = loss + weight * terms[name]
            else:
                loss = loss + (weight if self.rate_scale is None else weight * self.rate_scale) * terms[name]
                rate = rate + terms[name]
        terms["rate"] = rate
        for index, constraint in enumerate(self.experiment.constraints):
            violation = constraint_violation(constraint, terms)
            loss = loss + self._constraint_weight(index, constraint, violation) * violation
        terms["loss"] = loss
        return terms, outputs

    # ---- randomness ---------------------------------------------------------------------

    def reseed(self, seed: int) -> None:
        """Restart every random stream from `seed` alone: the seed generators that the
        training and test steps draw from (the channel's noise, the loss terms'), set in
        place so that a traced step draws the new streams without being traced again, and
        the global generators of Keras, TensorFlow, NumPy and Python (draws outside the
        steps: marginal samples, importance weights)."""
        keras.utils.set_random_seed(seed)
        for index, generator in enumerate((self.seed_generator, self.channel.seed_generator)):
            generator.state.assign([derived_seed(seed, index), 0])

    # ---- training -----------------------------------------------------------------------

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def _record(self, terms: dict[str, tf.Tensor], weights: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name], sample_weight=weights)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            terms = self.per_example_terms(x, training=True)
            # Replicas' gradients are summed: each takes its share of the global batch's mean.
            loss = tf.reduce_mean(terms["loss"]) / self.distribute_strategy.num_replicas_in_sync
        variables = self.trainable_variables
        gradients = tape.gradient(loss, variables)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        separate = {id(v) for v in self.separately_optimized_variables()}
        self.optimizer.apply_gradients([(g, v) for g, v in pairs if id(v) not in separate])
        if separate:
            self.density_optimizer.apply_gradients([(g, v) for g, v in pairs if id(v) in separate])
        if self.multipliers is not None:
            self._ascend_multipliers(terms)
        return self._record(terms)

    def _constraint_weight(self, index: int, constraint: ConstraintSpec, violation: tf.Tensor) -> tf.Tensor:
        """The weight of a constraint's violation g in the loss: λ + ρ·mean_batch(g) (kept
        >= 0 for an inequality), a constant for the gradient, whose gradient is then that of
        the augmented Lagrangian λ·ḡ + (ρ/2)·ḡ² (ρ = `penalty`; max(0, ·) for inequalities,
        Rockafellar's form). ρ = 0 leaves λ alone."""
        weight = self.multipliers[index]
        if constraint.penalty:
            weight = weight + constraint.penalty * tf.stop_gradient(tf.reduce_mean(violation))
            if constraint.relation != "eq":
                weight = tf.maximum(weight, 0.0)
        return weight

    def _ascend_multipliers(self, terms: dict[str, tf.Tensor]) -> None:
        """One gradient-ascent step of the Lagrange multipliers on this batch's violations."""
        steps = []
        for index, constraint in enumerate(self.experiment.constraints):
            new = self.multipliers[index] + constraint.lr * tf.reduce_mean(constraint_violation(constraint, terms))
            steps.append(new if constraint.relation == "eq" else tf.maximum(new, 0.0))
        self.multipliers.assign(tf.stop_gradient(tf.stack(steps)))

    def scheduled_weights(self, epoch: int) -> dict[str, float]:
        """Set the rate weights' multiplier of epoch `epoch` (0-based) from the config's
        ``anneal_schedule``; the values the history records for the epoch: ``beta``, the
        rate terms' weight (β·m(e), or m(e) when the config sets weights without β)."""
        if self.rate_scale is None:
            return {}
        scale = self.experiment.anneal(epoch)
        self.rate_scale.assign(scale)
        beta = self.experiment.beta
        return {"beta": scale if beta is None else beta * scale}

    def multiplier_values(self) -> dict[str, float]:
        """The Lagrange multipliers as they now are, by name (``lagrange_rate_eq``, ...)."""
        if self.multipliers is None:
            return {}
        return {constraint.name: float(value)
                for constraint, value in zip(self.experiment.constraints, self.multipliers.numpy())}

    def separately_optimized_variables(self) -> list:
        """The marginal's variables when they have their own optimizer (``lr_density``)."""
        return self.marginal.trainable_variables if self.density_optimizer is not None else []

    def test_step(self, data):
        x, weights = data[0], data[1]
        return self._record(self.per_example_terms(x, training=False), weights)


def constraint_violation(constraint: ConstraintSpec, terms: dict[str, tf.Tensor]) -> tf.Tensor:
    """g [B] per example, nats: q − value for ``eq`` and ``leq``, value − q for ``geq``, where
    q is the constrained quantity (rate or distortion); the constraint holds when the
    batch mean of g is 0 (``eq``) or at most 0."""
    quantity = terms[constraint.quantity]
    return constraint.value - quantity if constraint.relation == "geq" else quantity - constraint.value


def build_model(config: ExperimentConfig) -> RateDistortionModel:
    """Build and compile the model of `config`, with the learning rate of its first epoch."""
    model = RateDistortionModel(config, name="rate_distortion_autoencoder")
    model.build((None, *config.input_shape))
    optimizer = OPTIMIZERS[config.optimizer]
    first_rate = learning_rate_schedule(config.lr)(0, config.epochs)
    model.compile(optimizer=optimizer(**{**config.optimizer_params, "learning_rate": first_rate}))
    if config.lr_density is not None and model.marginal is not None and model.marginal.trainable_variables:
        model.density_optimizer = optimizer(**{**config.optimizer_params, "learning_rate": config.lr_density})
        model.density_optimizer.build(model.marginal.trainable_variables)
    separate = {id(v) for v in model.separately_optimized_variables()}
    model.optimizer.build([v for v in model.trainable_variables if id(v) not in separate])
    return model

