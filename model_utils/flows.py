"""MADE and affine autoregressive flows as Keras 3 layers.

A MADE (Germain et al. 2015, "MADE: Masked autoencoder for distribution
estimation") maps v in R^D to (m(v), s(v)) with m_i, s_i depending only on
v_<i = (v_0, ..., v_{i-1}).  An affine autoregressive step built on it,

    v'_i = v_i * exp(s_i(v_<i)) + m_i(v_<i),                          (1)

has a lower-triangular Jacobian with diagonal exp(s_i), so that
log|det dv'/dv| = sum_i s_i, and it is computed in one parallel pass.

This parallel direction serves two uses:

* IAF encoder (Kingma et al. 2016, "Improved variational inference with
  inverse autoregressive flow"): z_0 = mu(x) + sigma(x) * eps, z = T(z_0),
  log q(z|x) = log N(z_0; mu, sigma) - log_det.
* MAF marginal density (Papamakarios et al. 2017, "Masked autoregressive flow
  for density estimation"), the density-evaluation direction: u = T(z),
  log p(z) = log N(u; 0, I) + log_det.  Sampling from p takes the sequential
  inverse, `AutoregressiveFlow.inverse`: D passes per step, for figures only.

The flow parameters do not depend on x (an unconditional flow, as with TFP's
``masked_autoregressive_default_template`` in the reference implementation).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from model_utils.activations import get_activation

_PACKAGE = "echo"

# (kernel, bias, 0/1 mask) of one masked dense layer.
_MaskedDense = tuple[keras.Variable, keras.Variable, np.ndarray]


def _validate_hidden_units(hidden_units: Sequence[int]) -> tuple[int, ...]:
    """Returns `hidden_units` as a tuple of ints; raises ValueError if invalid."""
    if isinstance(hidden_units, (str, bytes)) or not isinstance(hidden_units, Sequence):
        raise ValueError(f"hidden_units must be a sequence of ints, got {hidden_units!r}.")
    if len(hidden_units) == 0:
        raise ValueError("hidden_units must contain at least one layer width.")
    for units in hidden_units:
        if not _is_int(units) or units < 1:
            raise ValueError(f"hidden_units must be positive ints, got {list(hidden_units)!r}.")
    return tuple(int(units) for units in hidden_units)


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but True as a width or step count is a caller bug.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _hidden_degrees(units: int, dim: int) -> np.ndarray:
    """Degrees of `units` hidden units, cycling over 1..D-1.

    Deterministic so that a rebuilt layer has the same connectivity, and every
    degree 1..D-1 is present whenever units >= D-1.  For D == 1 no hidden degree
    can be below the output degree 1; all units get degree 1 and are cut off from
    the output, whose value is then its bias alone.
    """
    return np.arange(units) % max(dim - 1, 1) + 1


def _mask(in_degrees: np.ndarray, out_degrees: np.ndarray, strict: bool) -> np.ndarray:
    """[len(in_degrees), len(out_degrees)] 0/1 mask: out >= in, or out > in if strict."""
    compare = np.greater if strict else np.greater_equal
    return compare(out_degrees[np.newaxis, :], in_degrees[:, np.newaxis])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MADE(keras.layers.Layer):
    """Masked autoencoder (Germain et al. 2015) giving shift and log-scale.

    Input v: [..., D] (typically [B, D]).  Output (shift, log_scale), each
    [..., D], where output i depends only on v_0..v_{i-1}.  Degrees: inputs
    1..D, hidden units cyclic over 1..D-1, outputs 1..D; a hidden unit of degree
    k sees inputs of degree <= k, an output of degree d sees hidden units of
    degree < d, so output 0 is a constant (its bias).

    The output layer is zero-initialised, so (shift, log_scale) = (0, 0) at the
    start and the affine step (1) is the identity: the IAF posterior starts as
    the diagonal Gaussian, the MAF prior as N(0, I), and exp(log_scale) cannot
    overflow before training.  The output kernel still gets a non-zero gradient
    (the hidden activations are non-zero), so training moves away from it.

    Masks are numpy constants, not weights: they are fixed by D and the widths,
    so they need not be saved, and `weights` lists only trainable parameters.

    Args:
        hidden_units: widths of the hidden layers (at least one, all positive).
        activation: hidden activation, anything `keras.activations.get` accepts.
        mean_only: if True, log_scale is exactly zero (shift-only, volume
            preserving) and no log-scale parameters are created.
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        activation: str | Callable = "relu",
        mean_only: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = _validate_hidden_units(hidden_units)
        self.activation = keras.activations.get(activation)
        self.mean_only = bool(mean_only)

    def build(self, input_shape: Sequence[int | None]) -> None:
        dim = input_shape[-1]
        if dim is None or dim < 1:
            raise ValueError(f"MADE needs a known last dimension D >= 1, got shape {input_shape}.")
        in_degrees = np.arange(1, dim + 1)
        self._hidden = []
        for layer, units in enumerate(self.hidden_units):
            degrees = _hidden_degrees(units, dim)
            mask = _mask(in_degrees, degrees, strict=False)
            self._hidden.append(self._masked_dense(f"hidden_{layer}", mask, "glorot_uniform"))
            in_degrees = degrees
        output_mask = _mask(in_degrees, np.arange(1, dim + 1), strict=True)
        self._shift = self._masked_dense("shift", output_mask, "zeros")
        self._log_scale = None if self.mean_only else self._masked_dense("log_scale", output_mask, "zeros")

    def _masked_dense(self, name: str, mask: np.ndarray, kernel_initializer: str) -> _MaskedDense:
        """Creates (kernel, bias, mask) for a dense layer of shape mask.shape."""
        kernel = self.add_weight(name=f"{name}_kernel", shape=mask.shape, initializer=kernel_initializer)
        bias = self.add_weight(name=f"{name}_bias", shape=(mask.shape[1],), initializer="zeros")
        return kernel, bias, mask.astype(self.compute_dtype)

    @staticmethod
    def _apply(dense: _MaskedDense, inputs: Any) -> Any:
        kernel, bias, mask = dense
        return ops.matmul(inputs, kernel * mask) + bias

    def call(self, v: Any) -> tuple[Any, Any]:
        """(shift, log_scale), each [..., D], from v [..., D]."""
        hidden = v
        for dense in self._hidden:
            hidden = self.activation(self._apply(dense, hidden))
        shift = self._apply(self._shift, hidden)
        if self._log_scale is None:
            return shift, ops.zeros_like(shift)
        return shift, self._apply(self._log_scale, hidden)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation=keras.activations.serialize(self.activation),
            mean_only=self.mean_only,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AutoregressiveFlow(keras.layers.Layer):
    """Stack of `steps` affine autoregressive steps (1), each with its own MADE.

    Step t maps v to v'_i = v_i * exp(s_i(v_<i)) + m_i(v_<i), (m, s) = MADE_t(v).
    Between consecutive steps the coordinate order is reversed (as TFP's Chain of
    MaskedAutoregressiveFlow and Permute(reversed)); there is no reversal after
    the last step.  Without the reversals the composite would stay triangular in
    the same order, so later coordinates could never influence earlier ones.

    `call(v)`, v [..., D] (typically [B, D]), returns (out, log_det): out
    [..., D] and log_det [...] = sum_t sum_i s_i = log|det d out / d v| (exactly 0
    when mean_only).  Sign conventions:
      IAF:  z = out for v = z_0, log q(z|x) = log N(z_0; mu, sigma) - log_det.
      MAF:  u = out for v = z,   log p(z)   = log N(u; 0, I)        + log_det.

    At initialisation every step is the identity (zero MADE outputs), so the
    flow is the permutation v -> reverse^(steps-1)(v): the identity for odd
    `steps`, the coordinate reversal for even `steps`; log_det = 0 either way.

    s is unconstrained, so exp(s) can overflow if the weights grow large; the
    experiment configs use mean_only=True, where s = 0 exactly.

    Args:
        steps: number of autoregressive steps, >= 1.
        hidden_units: hidden widths of every step's MADE.
        activation: hidden activation of the MADEs.
        mean_only: shift-only (volume preserving) steps if True.
    """

    def __init__(
        self,
        steps: int,
        hidden_units: Sequence[int],
        activation: str | Callable = "relu",
        mean_only: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not _is_int(steps) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}.")
        self.steps = int(steps)
        self._mades = [
            MADE(hidden_units, activation, mean_only, dtype=self.dtype_policy, name=f"made_{step}")
            for step in range(self.steps)
        ]

    def build(self, input_shape: Sequence[int | None]) -> None:
        # Built here rather than on first call so that weights exist (and can be
        # set) as soon as the flow is built.
        for made in self._mades:
            made.build(input_shape)

    def call(self, v: Any) -> tuple[Any, Any]:
        """(out [..., D], log_det [...]) from v [..., D]; see the class docstring."""
        log_det = ops.zeros_like(v[..., 0])
        for step, made in enumerate(self._mades):
            if step > 0:
                v = ops.flip(v, axis=-1)
            shift, log_scale = made(v)
            v = v * ops.exp(log_scale) + shift
            log_det = log_det + ops.sum(log_scale, axis=-1)
        return v, log_det

    def inverse(self, out: Any) -> Any:
        """v [..., D] with call(v)[0] == out, for out [..., D].

        Step t is inverted coordinate by coordinate: v_i = (v'_i - m_i(v_<i))·exp(-s_i(v_<i)),
        and after pass k the first k coordinates are exact (m_i and s_i see only v_<i), so D
        passes per step give the exact inverse. Steps are undone last to first, with the
        coordinate reversals between them.
        """
        v = out
        dim = out.shape[-1]
        for step in reversed(range(self.steps)):
            target = v
            for _ in range(dim):
                shift, log_scale = self._mades[step](v)
                v = (target - shift) * ops.exp(-log_scale)
            if step > 0:
                v = ops.flip(v, axis=-1)
        return v

    def get_config(self) -> dict[str, Any]:
        made = self._mades[0]
        config = super().get_config()
        config.update(
            steps=self.steps,
            hidden_units=list(made.hidden_units),
            activation=keras.activations.serialize(made.activation),
            mean_only=made.mean_only,
        )
        return config


def flow_from_options(options: dict[str, Any], name: str, dtype: Any = None) -> AutoregressiveFlow:
    """The flow a config describes: ``{"steps", "hidden_units", "activation", "mean_only"}``,
    with the activation given by a name of the project's registry (`model_utils.activations`)."""
    return AutoregressiveFlow(
        options["steps"],
        options["hidden_units"],
        activation=get_activation(options["activation"]),
        mean_only=options["mean_only"],
        name=name,
        dtype=dtype,
    )
