"""Evaluation on random batches (`experiment.evaluation`): Echo's noise for an example is
built from the other examples of its batch, so batches in a data file's own order (sorted
by class, say) bias its scores; evaluation takes a seeded random order instead, and reports
every per-example statistic back in the data's order."""

import copy

import numpy as np
import tensorflow as tf

from experiment.evaluation import evaluate
from model import build_model
from model_utils.config import parse_config
from support import BATCH, TINY, tiny_images


def _echo_model(**layer_kwargs):
    raw = copy.deepcopy(TINY)
    raw["layers"][3]["layer_kwargs"].update(layer_kwargs)
    tf.keras.utils.set_random_seed(0)
    return build_model(parse_config(raw, "tiny echo"))


def _sorted_images(kinds: int = 5) -> np.ndarray:
    """`kinds` random images, each repeated BATCH times in a row: data sorted by kind."""
    return np.repeat(tiny_images(kinds, seed=4), BATCH, axis=0)


def test_file_order_batches_of_sorted_data_erase_a_batch_centred_echo_code():
    # With f(x) centred by its batch mean (echomc), a batch of identical images has
    # f - mean f = 0, hence z = 0 + S·(a sum of zeros) = 0: the code says nothing, and the
    # distortion is that of a decoder fed zeros. Random batches mix the kinds.
    model = _echo_model(echomc=True)
    x = _sorted_images()
    in_file_order, file_statistics = evaluate(model, x, BATCH, None)
    _, random_statistics = evaluate(model, x, BATCH, 3)
    assert np.abs(file_statistics["z"]).max() < 1e-6
    assert np.abs(random_statistics["z"]).max() > 1e-3
    zero_code = model.distortion.compute(x, model.decode(tf.zeros((len(x), 4)))).numpy().mean()
    np.testing.assert_allclose(in_file_order["distortion"], zero_code, rtol=1e-5)


def test_seeded_evaluation_is_reproducible_and_its_statistics_follow_the_data_order():
    model = _echo_model()
    x = tiny_images(3 * BATCH + 7, seed=5)  # not a multiple of the batch: the tail overlaps
    model.reseed(0)
    first, statistics = evaluate(model, x, BATCH, 11)
    model.reseed(0)
    again, statistics_again = evaluate(model, x, BATCH, 11)
    assert first == again
    # f(x) and log s(x) do not depend on the batch: row i must be x[i]'s own, whatever the order.
    features = model.encoder_features(x)
    channel = model.channel
    np.testing.assert_allclose(statistics["z_mean"], channel.fx_head(features).numpy(), rtol=1e-5, atol=1e-6)
    log_scale = channel.log_scale(channel.sx_head(features)).numpy()
    np.testing.assert_allclose(statistics["z_log_scale"], log_scale, rtol=1e-5, atol=1e-6)
    for name in statistics:
        np.testing.assert_array_equal(statistics[name], statistics_again[name])
