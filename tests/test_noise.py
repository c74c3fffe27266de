"""Noise-channel layers (`model_utils/noise.py`)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import echo_noise
from model_utils.noise import EchoChannel, GaussianChannel, IAFChannel

RNG = np.random.default_rng(0)


def _flow(steps, hidden_units, activation, mean_only):
    return {"steps": steps, "hidden_units": hidden_units, "activation": activation, "mean_only": mean_only}


def _round_trip(layer, features):
    copy = type(layer).from_config(layer.get_config())
    copy.build(features.shape)
    copy.set_weights(layer.get_weights())
    return copy


def test_echo_channel_rate_is_minus_log_det_of_its_scale():
    features = RNG.normal(size=(100, 6)).astype("float32")
    channel = EchoChannel(3, batch=100)
    outputs = channel(features)
    assert channel.clip == echo_noise.echo_clip(99)
    log_s = outputs["z_log_scale"].numpy().astype(np.float64)
    assert np.all(log_s <= 0)
    expected = -(math.log(channel.clip) + log_s).sum(axis=1)
    # A float32 sum of three positive O(1) terms against the same sum in float64: a few ulps.
    np.testing.assert_allclose(channel.rate(outputs), expected, rtol=1e-5)
    assert np.all(np.abs(outputs["z_mean"]) <= 1)


def test_echo_channel_serializes_and_keeps_its_clip():
    features = RNG.normal(size=(100, 6)).astype("float32")
    channel = EchoChannel(3, batch=100, fx_clip=10.0, fx_activation="linear", d_max=100)
    channel(features)
    copy = _round_trip(channel, features)
    assert copy.clip == channel.clip == echo_noise.echo_clip(99, 10.0)
    np.testing.assert_array_equal(copy(features)["z_log_scale"], channel(features)["z_log_scale"])


def test_gaussian_channel_samples_the_reparameterized_gaussian():
    features = RNG.normal(size=(4000, 5)).astype("float32")
    channel = GaussianChannel(2)
    outputs = channel(features)
    standardized = (outputs["z"] - outputs["z_mean"]) / tf.exp(outputs["z_log_scale"])
    assert np.mean(standardized) == pytest.approx(0, abs=0.05)
    assert np.var(standardized) == pytest.approx(1, abs=0.05)
    np.testing.assert_array_equal(outputs["z_log_scale"], 0.5 * outputs["z_log_var"])
    assert np.all(outputs["log_det"] == 0)
    copy = _round_trip(channel, features)
    np.testing.assert_array_equal(copy.gaussian_parameters(features)[0], channel.gaussian_parameters(features)[0])


def test_iaf_log_posterior_is_the_change_of_variables_density():
    features = tf.constant(RNG.normal(size=(6, 5)))
    channel = IAFChannel(3, _flow(2, [8], "tanh", False), dtype="float64")
    channel.build(features.shape)
    for weight in channel.flow.weights:
        weight.assign(RNG.normal(scale=0.5, size=weight.shape))
    outputs = channel(features)
    z0 = tf.constant(outputs["z0"].numpy())
    with tf.GradientTape() as tape:
        tape.watch(z0)
        z, _ = channel.flow(z0)
    jacobian = tape.batch_jacobian(z, z0).numpy()
    # float64; atol for a z near zero, the difference of O(1) terms.
    np.testing.assert_allclose(z, outputs["z"], rtol=1e-12, atol=1e-12)
    base = stats.norm.logpdf(z0, outputs["z_mean"], np.exp(outputs["z_log_scale"])).sum(axis=-1)
    expected = base - np.linalg.slogdet(jacobian)[1]
    np.testing.assert_allclose(outputs["log_q"], expected, rtol=1e-10)
    assert not np.allclose(outputs["log_det"], 0)


def test_iaf_channel_serializes():
    features = RNG.normal(size=(8, 5)).astype("float32")
    channel = IAFChannel(3, _flow(2, [8, 8], "relu", True))
    channel(features)
    copy = _round_trip(channel, features)
    assert copy.get_config() == channel.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(channel))
    assert isinstance(restored, IAFChannel) and restored.flow_options["steps"] == 2


# ---- Echo's f(x) centring, its s(x) heads, its health ------------------------------------


def _constant_heads(channel, f_bias, s_bias):
    """Zero kernels: f(x) = fx_act(f_bias) and a = s_bias for every example."""
    channel.fx_head.kernel.assign(np.zeros(channel.fx_head.kernel.shape, np.float32))
    channel.fx_head.bias.assign(np.full(channel.units, f_bias, np.float32))
    channel.sx_head.kernel.assign(np.zeros(channel.sx_head.kernel.shape, np.float32))
    channel.sx_head.bias.assign(np.full(channel.units, s_bias, np.float32))


def test_the_neg_square_scale_head_gives_log_s_minus_a_squared_and_reaches_one():
    features = RNG.normal(size=(100, 6)).astype("float32")
    channel = EchoChannel(3, batch=100, sx_activation="neg_square")
    channel.build(features.shape)
    a = features @ channel.sx_head.kernel.numpy() + channel.sx_head.bias.numpy()
    np.testing.assert_allclose(channel(features)["z_log_scale"], -(a**2), rtol=1e-6, atol=1e-7)
    _constant_heads(channel, 0.0, 0.0)
    assert np.all(channel(features)["z_log_scale"].numpy() == 0.0)  # s(x) = 1: the floor −log clip
    np.testing.assert_allclose(channel.rate(channel(features)), -3 * math.log(channel.clip), rtol=1e-6)


def test_running_centring_uses_the_mean_of_previous_batches_only():
    first, second = (RNG.normal(size=(100, 6)).astype("float32") for _ in range(2))
    channel = EchoChannel(3, batch=100, fx_centring="running")
    channel.build(first.shape)
    raw = [channel.fx_head(x).numpy() for x in (first, second)]
    # The first training batch has no previous batch: f(x) is not shifted.
    np.testing.assert_array_equal(channel(first, training=True)["z_mean"], raw[0])
    # The zero-debiased average of one batch mean is that mean: the second batch is centred by it.
    np.testing.assert_allclose(channel(second, training=True)["z_mean"], raw[1] - raw[0].mean(axis=0), atol=1e-6)
    centre = (0.9 * 0.1 * raw[0].mean(axis=0) + 0.1 * raw[1].mean(axis=0)) / (1 - 0.9**2)
    # Evaluation reads the average of every training batch so far and updates nothing.
    for _ in range(2):
        np.testing.assert_allclose(channel(first, training=False)["z_mean"], raw[0] - centre, atol=1e-6)
    assert float(channel.fx_updates.numpy()) == 2.0


def test_running_centring_takes_its_gradient_through_the_batch_mean():
    features = tf.constant(RNG.normal(size=(100, 6)).astype("float32"))
    channel = EchoChannel(3, batch=100, fx_centring="running")
    channel.build(features.shape)
    channel(features, training=True)  # one batch seen: c is its mean
    weights = tf.constant(RNG.normal(size=(1, 3)).astype("float32"))
    centre = (channel.fx_average / (1.0 - 0.9 ** channel.fx_updates)).numpy()  # as the layer computes it
    with tf.GradientTape(persistent=True) as tape:
        centred = channel.encode_mean(features, training=True)
        common = tf.reduce_sum(centred * weights)  # the same weight for every example
        varied = tf.reduce_sum(centred * features[:, :3])
    # The value is exactly f − c: the batch-mean term that carries the gradient adds 0.
    np.testing.assert_array_equal(centred, channel.fx_head(features).numpy() - centre)
    # A loss that moves every example's f alike gets no gradient: the common mode is the centre's.
    np.testing.assert_allclose(tape.gradient(common, channel.fx_head.bias), 0.0, atol=1e-5)
    assert np.abs(tape.gradient(varied, channel.fx_head.bias).numpy()).max() > 1e-3


def test_running_centring_builds_the_noise_from_the_centred_f():
    features = RNG.normal(size=(100, 6)).astype("float32")
    channel = EchoChannel(3, batch=100, fx_centring="running")
    channel.build(features.shape)
    _constant_heads(channel, 16.0, 1.0)  # f(x) = tanh(1) for every x
    channel(features, training=True)
    # Centred by its own (constant) mean, f(x) - c = 0, so the noise and z are exactly 0.
    np.testing.assert_allclose(channel.noise(features), 0.0, atol=1e-6)
    np.testing.assert_allclose(channel(features)["z"], 0.0, atol=1e-6)


@pytest.mark.parametrize("s_bias, saturated", [(0.0, 0.0), (200.0, 1.0)])
def test_echo_health_of_constant_heads_has_its_closed_form(s_bias, saturated):
    features = RNG.normal(size=(100, 6)).astype("float32")
    channel = EchoChannel(4, batch=100)
    channel.build(features.shape)
    _constant_heads(channel, 8.0, s_bias)  # f = tanh(1/2), a = s_bias for every example and unit
    health = {name: value.numpy() for name, value in channel.health(features).items()}
    log_s = math.log(1 / (1 + math.exp(-s_bias)))
    f, s = math.tanh(0.5), channel.clip * math.exp(log_s)
    assert health["saturated"] == saturated  # d log σ(a)/da = σ(−a): exactly 0 only past a ≈ 87
    assert health["at_floor"] == (1.0 if -log_s < 0.01 else 0.0)
    assert health["log_sx"] == pytest.approx(log_s, abs=1e-6)
    np.testing.assert_allclose(health["rate_per_dim"], -(math.log(channel.clip) + log_s), rtol=1e-6)
    # float32 tanh differs from the float64 one by a few tens of ulps.
    assert health["fx_mean"] == pytest.approx(f, rel=1e-5) and health["fx_spread"] == pytest.approx(0, abs=1e-6)
    # Every neighbour has the same f and S: ε = f·Σ_{l<L} S^l = f(1 − S^L)/(1 − S), L = 99.
    assert health["noise_mean"] == pytest.approx(f * (1 - s**99) / (1 - s), rel=1e-5)
    assert health["noise_spread"] == pytest.approx(0, abs=1e-5)


def test_a_batch_of_another_size_than_the_configs_gets_the_channels_message():
    channel = EchoChannel(3, batch=100)
    with pytest.raises(ValueError, match="a batch of 37 examples reached the channel, but the batch of the config is 100"):
        channel(RNG.normal(size=(37, 6)).astype("float32"))
    sample = tf.function(channel.call, input_signature=[tf.TensorSpec([None, 6])])
    assert sample(RNG.normal(size=(100, 6)).astype("float32"))["z"].shape == (100, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"a batch of\] \[37\] \[examples reached the channel, but the batch of the config is 100"):
        sample(RNG.normal(size=(37, 6)).astype("float32"))
