"""The trace of Echo's first training steps (`experiment.echo_trace`, `trace_echo.py`)."""

import copy
import csv
import json

import numpy as np
import pytest
import tensorflow as tf

import echo_noise
import trace_echo
from experiment.echo_trace import PATHS, gradient_paths
from model import build_model
from model_utils.config import parse_config
from support import BATCH, TINY, tiny_images


def _model(beta=1.5, **layer_kwargs):
    raw = copy.deepcopy(TINY)
    raw["layers"][3]["layer_kwargs"].update(layer_kwargs)
    raw["beta"] = beta
    tf.keras.utils.set_random_seed(0)
    return build_model(parse_config(raw, "tiny echo"))


@pytest.mark.parametrize("layer_kwargs", [{}, {"sx_act": "neg_square", "fx_centring": "running"}])
def test_the_paths_add_up_to_the_gradient_of_the_loss_with_respect_to_log_s(layer_kwargs):
    model = _model(**layer_kwargs)
    x = tf.constant(tiny_images(BATCH, seed=2))
    seed = tf.constant([3, 4], tf.int64)
    paths = gradient_paths(model, x, seed)
    np.testing.assert_array_equal(paths["grad_rate"], np.full((BATCH, 4), -1.5, np.float32))  # −β per entry
    # The same loss built in one piece, through echo_sample with the same neighbours.
    channel = model.channel
    log_s = tf.identity(paths["log_s"])
    with tf.GradientTape() as tape:
        tape.watch(log_s)
        z = echo_noise.echo_sample([paths["f"], log_s], clip=channel.clip, d_max=channel.d_max, batch=BATCH,
                                   set_batch=False, seed=seed)
        rate = tf.reduce_sum(echo_noise.echo_loss(log_s, clip=channel.clip), axis=-1)
        loss = tf.reduce_sum(model.distortion.compute(x, model.decode(z)) + 1.5 * rate)
    whole = tape.gradient(loss, log_s).numpy()
    split = sum(paths[f"grad_{path}"].numpy() for path in PATHS)
    # Sums of the same terms in another order: float32 rounding relative to the largest.
    np.testing.assert_allclose(split, whole, atol=1e-5 * np.abs(whole).max())


def test_without_deviations_of_f_only_the_mean_paths_and_the_rate_remain():
    model = _model()
    channel = model.channel
    channel.fx_head.kernel.assign(tf.zeros_like(channel.fx_head.kernel))  # f(x) the same for every x
    channel.fx_head.bias.assign(tf.fill([4], 4.0))
    paths = gradient_paths(model, tf.constant(tiny_images(BATCH)), tf.constant([1, 2], tf.int64))
    for path in ("own_deviation", "neighbours_deviation"):
        assert np.all(paths[f"grad_{path}"].numpy() == 0.0)
    assert np.abs(paths["grad_neighbours_mean"].numpy()).max() > 0


def test_the_command_line_traces_the_first_steps_and_writes_them(tmp_path, tiny_data, capsys):
    out = tmp_path / "trace.csv"
    argv = ["--config", json.dumps(TINY), "--dataset", "tiny", "--steps", "3", "--out", str(out)]
    assert trace_echo.main(argv) == 0
    with open(out, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["step"] for row in rows] == ["1", "2", "3"]
    for row in rows:
        # TINY's echo weight is 1: the rate's path is −1 per entry; the rate itself is positive.
        assert float(row["grad_rate"]) == -1.0 and float(row["rate"]) > 0
        paths = sum(float(row[f"grad_{path}"]) for path in PATHS)
        assert float(row["grad_total"]) == pytest.approx(paths, rel=1e-9, abs=1e-9)
    assert "a path's gradient < 0 raises log s(x)" in capsys.readouterr().out


def test_the_command_line_refuses_a_config_without_echo_noise(tiny_data, capsys):
    vae = copy.deepcopy(TINY)
    vae["layers"][3] = {"layer": 3, "encoder": True, "type": "vae"}
    vae["losses"] = [{"type": "vae"}]
    assert trace_echo.main(["--config", json.dumps(vae), "--dataset", "tiny", "--steps", "2"]) == 2
    assert "follows an Echo channel" in capsys.readouterr().err
