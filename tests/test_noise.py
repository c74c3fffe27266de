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
