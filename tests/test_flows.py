"""Tests for model_utils.flows: autoregressive structure, log-det, density, API.

Output layers start at zero, so every behavioural test first draws random
weights; Jacobians come from tf.GradientTape.batch_jacobian, not from the code
under test.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from model_utils.flows import MADE, AutoregressiveFlow

# Two float32 evaluations of the same small flow (inputs and outputs of order 1) that may
# run different kernels or summation orders. Each output passes through a few dozen
# roundings (two MADE steps of 8 hidden units, exp, multiply-add), so they may differ by
# tens of ulps: rtol 1e-5 is about 80 ulps (float32 eps = 1.19e-7). An output near zero
# is the difference of O(1) terms, v·exp(s) + m, and keeps their absolute error: atol
# 1e-6 is about 8 ulps of 1. (rtol 1e-6 alone failed by 1.02e-6 at 0.0439 on AVX-512.)
FLOAT32_FLOW = dict(rtol=1e-5, atol=1e-6)


def _randomize(layer: keras.layers.Layer, scale: float = 1.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=scale, size=weight.shape))


def _random_layer(layer: keras.layers.Layer, dim: int, scale: float = 1.0) -> keras.layers.Layer:
    layer.build((None, dim))
    _randomize(layer, scale)
    return layer


def _inputs(batch: int, dim: int, dtype: str = "float64", seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, dim)).astype(dtype)


def _batch_jacobians(fn, v: np.ndarray) -> list[np.ndarray]:
    """[B, D_out, D] Jacobian of each [B, D_out] output of fn with respect to v."""
    v = tf.constant(v)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(v)
        outputs = fn(v)
    zero = tf.UnconnectedGradients.ZERO
    return [tape.batch_jacobian(out, v, unconnected_gradients=zero).numpy() for out in outputs]


def _on_or_above_diagonal(jacobian: np.ndarray, offset: int) -> np.ndarray:
    """[B, n] entries (i, j) of [B, D, D] jacobian with j >= i + offset."""
    rows, cols = np.triu_indices(jacobian.shape[-1], k=offset)
    return jacobian[:, rows, cols]


def _strictly_lower(jacobian: np.ndarray) -> np.ndarray:
    return _on_or_above_diagonal(np.swapaxes(jacobian, 1, 2), 1)


@pytest.mark.parametrize("mean_only", [True, False])
@pytest.mark.parametrize("hidden_units", [(3,), (8, 16)])
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_made_outputs_depend_only_on_earlier_coordinates(dim, hidden_units, mean_only):
    made = _random_layer(MADE(hidden_units, mean_only=mean_only, dtype="float64"), dim)
    v = _inputs(6, dim)
    shift, log_scale = (out.numpy() for out in made(v))
    for jacobian in _batch_jacobians(made, v):
        assert np.all(_on_or_above_diagonal(jacobian, 0) == 0.0)
    if mean_only:
        assert np.all(log_scale == 0.0)
    if dim == 1:
        assert np.all(shift == shift[0]) and np.all(log_scale == log_scale[0])


def test_made_uses_every_earlier_coordinate():
    # A MADE with over-restrictive masks would pass the triangularity test.
    made = _random_layer(MADE((8, 8), activation="tanh", mean_only=False, dtype="float64"), 5)
    for jacobian in _batch_jacobians(made, _inputs(4, 5)):
        assert np.all(_strictly_lower(jacobian) != 0.0)


def test_single_step_jacobian_is_lower_triangular_with_exp_log_scale_diagonal():
    flow = _random_layer(AutoregressiveFlow(1, (8,), "tanh", mean_only=False, dtype="float64"), 4)
    v = _inputs(5, 4)
    (jacobian,) = _batch_jacobians(lambda x: flow(x)[:1], v)
    made = MADE((8,), "tanh", mean_only=False, dtype="float64")
    made.build((None, 4))
    made.set_weights(flow.get_weights())
    _, log_scale = made(v)
    assert np.all(_on_or_above_diagonal(jacobian, 1) == 0.0)
    np.testing.assert_allclose(np.diagonal(jacobian, axis1=1, axis2=2), np.exp(log_scale), rtol=1e-12)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_log_det_matches_jacobian(steps):
    flow = _random_layer(AutoregressiveFlow(steps, (8, 8), mean_only=False, dtype="float64"), 4, 0.5)
    v = _inputs(5, 4)
    (jacobian,) = _batch_jacobians(lambda x: flow(x)[:1], v)
    _, log_det = flow(v)
    _, expected = np.linalg.slogdet(jacobian)
    assert np.all(np.abs(expected) > 1e-3)
    np.testing.assert_allclose(log_det.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_log_det_matches_jacobian_in_float32():
    flow = _random_layer(AutoregressiveFlow(2, (8,), mean_only=False), 3, 0.5)
    v = _inputs(5, 3, "float32")
    (jacobian,) = _batch_jacobians(lambda x: flow(x)[:1], v)
    _, expected = np.linalg.slogdet(jacobian.astype(np.float64))
    np.testing.assert_allclose(flow(v)[1].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_mean_only_flow_preserves_volume():
    flow = _random_layer(AutoregressiveFlow(3, (8,), mean_only=True, dtype="float64"), 4)
    v = _inputs(5, 4)
    out, log_det = flow(v)
    (jacobian,) = _batch_jacobians(lambda x: flow(x)[:1], v)
    assert np.all(log_det.numpy() == 0.0)
    np.testing.assert_allclose(np.linalg.slogdet(jacobian)[1], 0.0, atol=1e-12)
    assert not np.allclose(out.numpy(), v) and not np.allclose(out.numpy(), v[:, ::-1])


def test_coordinate_order_is_reversed_between_steps():
    dim = 3
    flow = _random_layer(AutoregressiveFlow(2, (8,), "tanh", mean_only=False, dtype="float64"), dim)
    first, second = (AutoregressiveFlow(1, (8,), "tanh", mean_only=False, dtype="float64") for _ in range(2))
    weights = flow.get_weights()
    for step, single in enumerate((first, second)):
        single.build((None, dim))
        per_step = len(single.weights)
        single.set_weights(weights[step * per_step : (step + 1) * per_step])
    v = _inputs(4, dim)
    middle, first_log_det = first(v)
    expected, second_log_det = second(middle.numpy()[:, ::-1])
    out, log_det = flow(v)
    # float64; atol for outputs near zero, which are differences of O(1) terms.
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_det.numpy(), (first_log_det + second_log_det).numpy(), rtol=1e-12, atol=1e-12)
    # A product of lower-triangular Jacobians would stay lower triangular.
    (jacobian,) = _batch_jacobians(lambda x: flow(x)[:1], v)
    assert np.all(np.abs(_on_or_above_diagonal(jacobian, 1)).max(axis=-1) > 1e-3)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_inverse_undoes_the_flow(steps):
    flow = _random_layer(AutoregressiveFlow(steps, (8, 8), "tanh", mean_only=False, dtype="float64"), 4, 0.7)
    v = _inputs(6, 4)
    out, _ = flow(v)
    assert np.abs(out.numpy() - v).max() > 0.1  # the flow moves v, so the round trip means something
    # float64; atol for coordinates near zero.
    np.testing.assert_allclose(flow.inverse(out).numpy(), v, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(flow(flow.inverse(v))[0].numpy(), v, rtol=1e-10, atol=1e-10)


def _density_on_grid(flow: AutoregressiveFlow, dim: int, half_width: float, points: int, sign: float) -> float:
    """Riemann sum of N(out(z); 0, I) * exp(sign * log_det(z)) over [-w, w]^dim."""
    axis = np.linspace(-half_width, half_width, points)
    grid = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    out, log_det = (t.numpy() for t in flow(grid))
    log_normal = -0.5 * np.sum(out**2, axis=-1) - 0.5 * dim * np.log(2.0 * np.pi)
    cell = (axis[1] - axis[0]) ** dim
    return float(np.sum(np.exp(log_normal + sign * log_det)) * cell)


# Steps and scale are chosen so that log_det is far from 0 (the sign check below
# bites) while the density stays inside the box.
@pytest.mark.parametrize("dim, steps, points", [(1, 3, 4001), (2, 2, 401)])
def test_maf_density_integrates_to_one(dim, steps, points):
    flow = _random_layer(AutoregressiveFlow(steps, (16,), "tanh", mean_only=False, dtype="float64"), dim, 0.3)
    assert _density_on_grid(flow, dim, 12.0, points, sign=1.0) == pytest.approx(1.0, abs=1e-2)
    # The wrong log-det sign is detectably off, so the check above has teeth.
    assert abs(_density_on_grid(flow, dim, 12.0, points, sign=-1.0) - 1.0) > 5e-2


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_fresh_flow_is_identity_up_to_reversal(steps):
    flow = AutoregressiveFlow(steps, (8,), mean_only=False)
    v = _inputs(5, 4, "float32")
    out, log_det = flow(v)
    expected = v if steps % 2 == 1 else v[:, ::-1]
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(log_det.numpy(), np.zeros(5))


def test_flow_accepts_leading_batch_dimensions():
    flow = _random_layer(AutoregressiveFlow(2, (8,), mean_only=False), 3, 0.5)
    v = _inputs(6, 3, "float32")
    out, log_det = flow(v.reshape(2, 3, 3))
    flat_out, flat_log_det = flow(v)
    # A [2, 3, 3] input runs other matmul kernels than [6, 3]: equal up to float32 rounding.
    np.testing.assert_allclose(out.numpy().reshape(6, 3), flat_out.numpy(), **FLOAT32_FLOW)
    np.testing.assert_allclose(log_det.numpy().reshape(6), flat_log_det.numpy(), **FLOAT32_FLOW)


@pytest.mark.parametrize("activation", ["tanh", keras.activations.elu])
@pytest.mark.parametrize(
    "make",
    [
        lambda activation: MADE((4, 5), activation, mean_only=False),
        lambda activation: AutoregressiveFlow(2, (4, 5), activation, mean_only=False),
    ],
)
def test_config_round_trip(make, activation):
    layer = _random_layer(make(activation), 3, 0.5)
    rebuilt = type(layer).from_config(layer.get_config())
    rebuilt.build((None, 3))
    rebuilt.set_weights(layer.get_weights())
    assert rebuilt.get_config() == layer.get_config()
    v = _inputs(4, 3, "float32")
    for original, copy in zip(layer(v), rebuilt(v)):
        np.testing.assert_array_equal(original.numpy(), copy.numpy())


def test_flow_serializes_as_registered_keras_object():
    flow = AutoregressiveFlow(3, [4], "tanh", mean_only=False, name="prior_flow")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(flow))
    assert isinstance(restored, AutoregressiveFlow)
    assert restored.get_config() == flow.get_config()


def test_flow_in_functional_model_under_tf_function_and_gradients_reach_every_step():
    dim, steps = 3, 2
    inputs = keras.Input(shape=(dim,))
    flow = AutoregressiveFlow(steps, (8,), "tanh", mean_only=False)
    model = keras.Model(inputs, flow(inputs))
    assert tuple(model.outputs[0].shape) == (None, dim) and tuple(model.outputs[1].shape) == (None,)
    _randomize(flow, 0.5)

    @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)])
    def loss_and_gradients(v):
        with tf.GradientTape() as tape:
            out, log_det = model(v)
            loss = tf.reduce_sum(out**2) - tf.reduce_sum(log_det)
        return out, log_det, tape.gradient(loss, model.trainable_weights)

    for batch in (4, 7):
        v = _inputs(batch, dim, "float32", seed=batch)
        out, log_det, gradients = loss_and_gradients(v)
        eager_out, eager_log_det = flow(v)
        # Graph and eager execution may pick different (oneDNN or Eigen) kernels.
        np.testing.assert_allclose(out.numpy(), eager_out.numpy(), **FLOAT32_FLOW)
        np.testing.assert_allclose(log_det.numpy(), eager_log_det.numpy(), **FLOAT32_FLOW)
    # Per step: hidden, shift and log-scale kernels and biases.
    assert len(model.trainable_weights) == steps * 6
    assert all(gradient is not None and np.any(gradient.numpy() != 0.0) for gradient in gradients)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(steps=0, hidden_units=[4]),
        dict(steps=-1, hidden_units=[4]),
        dict(steps=1.5, hidden_units=[4]),
        dict(steps=True, hidden_units=[4]),
        dict(steps=2, hidden_units=[]),
        dict(steps=2, hidden_units=[0]),
        dict(steps=2, hidden_units=[4, -1]),
        dict(steps=2, hidden_units=[2.5]),
        dict(steps=2, hidden_units="16"),
        dict(steps=2, hidden_units=16),
    ],
)
def test_flow_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        AutoregressiveFlow(**kwargs)


@pytest.mark.parametrize("hidden_units", [[], [3, 0], (True,)])
def test_made_rejects_invalid_hidden_units(hidden_units):
    with pytest.raises(ValueError, match="hidden_units"):
        MADE(hidden_units)


@pytest.mark.parametrize("shape", [(None, 0), (None, None)])
def test_made_rejects_unusable_input_dimension(shape):
    with pytest.raises(ValueError, match="D >= 1"):
        MADE([4]).build(shape)
