"""Activations for the heads of the noise channels, and the registry that resolves the
activation names found in configs.

`tanh16` and `tanh64` are tanh slowed down by a factor of 16 or 64: they stay bounded by
1 (so Echo's default clip, computed for |f(x)| ≤ 1, applies) while staying close to linear
over a wide range of pre-activations. `log_sig64` is the matching log-sigmoid, and
`neg_square` (−x²) a log-scale head without a saturating region, for s(x) ≤ 1.

A config names activations by strings such as "tensorflow.keras.activations.relu" or
"model_utils.activations.tanh16". They resolve through a fixed table of known names,
never by importing a module named in a config: a config is data, not code.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

Activation = Callable[[tf.Tensor], tf.Tensor]


@keras.saving.register_keras_serializable(package="echo")
def tanh16(x: tf.Tensor) -> tf.Tensor:
    """tanh(x / 16), in (-1, 1)."""
    return tf.tanh(x / 16.0)


@keras.saving.register_keras_serializable(package="echo")
def tanh64(x: tf.Tensor) -> tf.Tensor:
    """tanh(x / 64), in (-1, 1)."""
    return tf.tanh(x / 64.0)


@keras.saving.register_keras_serializable(package="echo")
def log_sig64(x: tf.Tensor) -> tf.Tensor:
    """log sigmoid(x / 64), in (-inf, 0): the log of a scale s(x) in (0, 1)."""
    return tf.math.log_sigmoid(x / 64.0)


@keras.saving.register_keras_serializable(package="echo")
def log_sigmoid(x: tf.Tensor) -> tf.Tensor:
    """log sigmoid(x), in (-inf, 0): the log of a scale s(x) in (0, 1)."""
    return tf.math.log_sigmoid(x)


@keras.saving.register_keras_serializable(package="echo")
def neg_square(x: tf.Tensor) -> tf.Tensor:
    """-x², in (-inf, 0]: the log of a scale s(x) = exp(-x²) in (0, 1] that reaches 1 at
    x = 0. Unlike a log-sigmoid, which approaches 0 only as x → ∞ with a vanishing slope,
    it has no region where its slope vanishes: a rate penalty −log s pulls x to 0 and
    stops there, instead of pushing it without bound."""
    return -tf.square(x)


_KERAS_ACTIVATIONS = ("relu", "sigmoid", "softplus", "tanh", "linear", "elu", "selu", "swish", "gelu", "exponential")
_PROJECT_ACTIVATIONS: dict[str, Activation] = {
    "tanh16": tanh16,
    "tanh64": tanh64,
    "log_sig64": log_sig64,
    "log_sigmoid": log_sigmoid,
    "neg_square": neg_square,
}


def _build_registry() -> dict[str, Activation]:
    registry: dict[str, Activation] = {}
    for name in _KERAS_ACTIVATIONS:
        function = keras.activations.get(name)
        for prefix in ("", "keras.activations.", "tensorflow.keras.activations.", "tf.keras.activations."):
            registry[prefix + name] = function
    for name, function in _PROJECT_ACTIVATIONS.items():
        registry[name] = function
        registry["model_utils.activations." + name] = function
    for prefix in ("tensorflow.math.", "tf.math.", "tensorflow.nn.", "tf.nn."):
        registry[prefix + "log_sigmoid"] = log_sigmoid
    # A reference config ("echo_linear.json") spells the identity this way.
    registry["tensorflow.keras.linear"] = registry["linear"]
    return registry


ACTIVATIONS: dict[str, Activation] = _build_registry()


def get_activation(name: str | None) -> Activation:
    """The activation a config names; None means linear. KeyError lists the known names."""
    if name is None:
        return ACTIVATIONS["linear"]
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(n for n in ACTIVATIONS if "." not in n))
        raise KeyError(
            f"unknown activation {name!r}; known: {known} (optionally prefixed by "
            "'keras.activations.', 'tensorflow.keras.activations.' or 'model_utils.activations.')"
        ) from None
