"""Mixed precision (`model_utils.precision`): bfloat16 convolutions and dense layers, every
rate, distortion and loss in float32, and a fallback where bfloat16 would be emulated."""

import copy
import math

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port

from model import build_model
from model_utils.config import ConfigError, parse_config
from model_utils.precision import bfloat16_unsupported_reason, effective_precision
from support import TINY, tiny_images


def _tiny_model(precision):
    raw = copy.deepcopy(TINY)
    raw["precision"] = precision
    tf.keras.utils.set_random_seed(0)
    return build_model(parse_config(raw, "tiny test config"))


def test_bfloat16_runs_the_network_layers_only_and_every_term_in_float32():
    model = _tiny_model("mixed_bfloat16")
    assert {layer.compute_dtype for layer in model.encoder_layers + model.decoder_layers} == {"bfloat16"}
    assert all(w.dtype == "float32" for w in model.weights)  # the weights stay float32
    assert model.channel.compute_dtype == "float32"
    terms, outputs = model.terms_and_outputs(tf.constant(tiny_images(TINY["batch"])))
    assert all(value.dtype == tf.float32 for value in [*terms.values(), *outputs.values()])


def test_the_bfloat16_models_echo_rate_is_exact_to_float32_rounding():
    model = _tiny_model("mixed_bfloat16")
    terms, outputs = model.terms_and_outputs(tf.constant(tiny_images(TINY["batch"])))
    log_s = outputs["z_log_scale"].numpy().astype(np.float64)
    exact = -(math.log(model.channel.clip) + log_s).sum(axis=1)  # I(X;Z) per example, float64
    # float32: a sum of 4 terms of about 0.2-1 nats has an error of a few 1e-7; bfloat16's
    # 8-bit mantissa would be off by about 1e-2.
    np.testing.assert_allclose(terms["rate"].numpy(), exact, rtol=1e-6, atol=1e-6)


def test_bfloat16_changes_the_scores_by_about_its_rounding_only():
    x = tf.constant(tiny_images(TINY["batch"], seed=4))
    distortions = []
    for precision in ("float32", "mixed_bfloat16"):
        model = _tiny_model(precision)  # the same seed: the same float32 weights
        distortions.append(model.distortion.compute(x, model.decode(model.encode(x)["z_mean"])).numpy())
    # 784 pixels of BCE near log 2 each: bfloat16 rounding (2^-8 relative) of activations
    # moves the sum by well under 1 %.
    np.testing.assert_allclose(distortions[1], distortions[0], rtol=1e-2)
    assert not np.array_equal(distortions[1], distortions[0])  # it did compute in bfloat16


def test_an_unknown_precision_is_refused():
    raw = copy.deepcopy(TINY)
    raw["precision"] = "float16"
    with pytest.raises(ConfigError, match="precision"):
        parse_config(raw, "tiny test config")


def test_a_cpu_without_bfloat16_instructions_falls_back_to_float32(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 avx512f\n")
    if not tf.config.list_physical_devices("GPU"):
        assert "no bfloat16 instructions" in bfloat16_unsupported_reason(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    expected = None if _pywrap_util_port.IsMklEnabled() else "oneDNN"
    reason = bfloat16_unsupported_reason(cpuinfo)
    assert reason is None if expected is None else expected in reason
    assert effective_precision("float32") == ("float32", None)
