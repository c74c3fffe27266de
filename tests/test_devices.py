"""Data-parallel training (`experiment.devices`, `run.py --devices N`) on the two logical CPU
devices that conftest makes: each replica's Echo noise comes from its own batch of the
config's size, the replicas' gradients are averaged, and runs resume exactly."""

import copy
import math

import numpy as np
import pytest
import tensorflow as tf

from experiment.errors import EXIT_USAGE
from experiment.devices import data_parallel_strategy
from model import build_model
from model_utils.config import parse_config
from support import BATCH, TINY, load_pickle, run_tiny, tiny_images

STRATEGY = data_parallel_strategy(2)  # the one run.py --devices 2 uses in this process


def test_each_replica_builds_its_echo_noise_from_its_own_batch():
    # f(x) = tanh(h_0/16) is +0.5 for every example of replica 0 and -0.5 for replica 1, and
    # s(x) = 1: noise that mixed the replicas' batches would not be ±0.5·Σ_l clip^l.
    config = parse_config(TINY, "tiny")
    with STRATEGY.scope():
        model = build_model(config)
    channel = model.channel
    kernel = np.zeros(channel.fx_head.kernel.shape, np.float32)
    kernel[0] = 1.0
    channel.fx_head.kernel.assign(kernel)
    channel.sx_head.kernel.assign(np.zeros(channel.sx_head.kernel.shape, np.float32))
    channel.sx_head.bias.assign(np.full(4, 200.0, np.float32))  # log σ(200) = 0

    def replica_noise():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        sign = 1.0 - 2.0 * tf.cast(replica, tf.float32)
        return channel.noise(tf.fill((BATCH, kernel.shape[0]), sign * 16 * math.atanh(0.5)))

    per_replica = STRATEGY.experimental_local_results(STRATEGY.run(replica_noise))
    expected = 0.5 * sum(channel.clip**l for l in range(BATCH - 1))
    np.testing.assert_allclose(per_replica[0], expected, rtol=1e-5)
    np.testing.assert_allclose(per_replica[1], -expected, rtol=1e-5)
    assert channel.clip == build_model(config).channel.clip  # the clip of `batch`, not of 2·batch


def _sgd_config():
    raw = copy.deepcopy(TINY)
    raw.update(optimizer="SGD", lr=0.05)
    return parse_config(raw, "tiny sgd")  # outside the strategy's scope: parsing takes an optimizer step


def _weights_after_one_step(model, images, state):
    """A copy of the weights after one training step on `images`, the channel's generator
    at `state` (what its next seed will be)."""
    model.channel.seed_generator.state.assign(state)
    model.train_step((tf.constant(images),))
    return [w.numpy().copy() for w in model.trainable_weights]


def test_two_replicas_take_the_mean_of_two_one_device_steps():
    # With SGD the update is linear in the gradient: the two-replica step on A ∪ B must be
    # the mean of one-device steps on A and on B, each drawing the noise its replica draws.
    config = _sgd_config()
    images = tiny_images(2 * BATCH, seed=9)
    tf.keras.utils.set_random_seed(0)
    start = build_model(config).get_weights()
    state = np.array([123, 7], np.int64)

    with STRATEGY.scope():
        replicated = build_model(config)
    replicated.set_weights(start)
    replicated.channel.seed_generator.state.assign(state)
    dataset = STRATEGY.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(images).batch(2 * BATCH))
    STRATEGY.run(replicated.train_step, args=((next(iter(dataset)),),))
    both = [w.numpy() for w in replicated.trainable_weights]

    single = build_model(config)
    steps = []
    for replica, half in enumerate((images[:BATCH], images[BATCH:])):
        single.set_weights(start)
        seed = tf.random.experimental.stateless_fold_in(tf.constant(state), replica)
        steps.append(_weights_after_one_step(single, half, seed.numpy()))
    for index, weight in enumerate(both):
        mean = (steps[0][index] + steps[1][index]) / 2
        np.testing.assert_allclose(weight, mean, rtol=1e-4, atol=1e-6)
    assert not np.allclose(steps[0][0], steps[1][0])  # the halves do pull differently

    # One device with the global batch of 2·BATCH would build its noise from 2·BATCH − 1
    # neighbours under a larger clip: a different step from the two replicas'.
    raw = copy.deepcopy(TINY)
    raw.update(optimizer="SGD", lr=0.05, batch=2 * BATCH)
    raw["layers"][3]["layer_kwargs"]["d_max"] = 2 * BATCH
    large = build_model(parse_config(raw, "tiny sgd, one large batch"))
    assert large.channel.clip > replicated.channel.clip
    large.set_weights(start)
    one_large_step = _weights_after_one_step(large, images, state)
    assert not np.allclose(one_large_step[0], both[0], rtol=1e-4, atol=1e-6)


def test_a_two_device_run_reports_the_exact_rate_of_its_channel(tmp_path, tiny_data):
    assert run_tiny(tmp_path, "--devices", "2", "--epochs", "2") == 0
    results = load_pickle(tmp_path)
    assert results["args"]["devices"] == 2 and results["channel"]["clip"] == pytest.approx(0.41990, abs=1e-4)
    expected = -(math.log(results["channel"]["clip"]) + results["z_log_scale"].astype(np.float64)).sum(axis=1).mean()
    assert results["test_rate"] == pytest.approx(expected, rel=1e-5)
    assert all(math.isfinite(value) for value in results["loss"])


def test_a_two_device_run_resumes_exactly(tmp_path, tiny_data):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_tiny(whole, "--devices", "2", "--epochs", "3") == 0
    assert run_tiny(cut, "--devices", "2", "--epochs", "3", "--keep-checkpoint") == 0
    for name in ("out.pickle", "out.weights.h5"):
        (cut / name).unlink()
    for suffix in ("state.pickle", "weights.h5"):
        (cut / "out.checkpoint" / f"epoch-0003.{suffix}").unlink()
    assert run_tiny(cut, "--devices", "2", "--epochs", "3") == 0
    a, b = load_pickle(whole), load_pickle(cut)
    for key in ("loss", "rate", "distortion", "test_loss", "test_rate"):
        assert a[key] == b[key], key
    np.testing.assert_array_equal(a["z"], b["z"])
    # A checkpoint of the two-device run does not continue a one-device run.
    assert run_tiny(cut, "--epochs", "3", "--overwrite") == 0


@pytest.mark.parametrize("extra, fragment", [
    (["--devices", "3"], "--devices 3: this machine has no GPU and 2 CPU cores"),
    (["--devices", "2", "--train-size", str(BATCH + 5)], "fewer than one global batch of 40 (2 replicas × 20)"),
])
def test_an_impossible_device_request_is_refused_with_one_message(tmp_path, tiny_data, capsys, extra, fragment):
    assert run_tiny(tmp_path, *extra) == EXIT_USAGE
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "out.pickle").exists()
