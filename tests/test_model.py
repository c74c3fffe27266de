"""The model built from every config (`model.py`): it trains, and its terms add up."""

import copy
import math

import numpy as np
import pytest
import tensorflow as tf

from datasets.pipeline import evaluation_pipeline, training_pipeline
from model import build_model
from model_utils.config import ConfigError, load_config, parse_config
from support import BATCH, PROJECT_CONFIGS, TINY, reference_config_params, require_file, tiny_images


@pytest.mark.parametrize("path", PROJECT_CONFIGS + reference_config_params(), ids=str)
def test_every_config_trains_a_few_steps_and_evaluates(path):
    config = load_config(str(require_file(path))).with_epochs(1)
    tf.keras.utils.set_random_seed(0)
    model = build_model(config)
    model.run_eagerly = True  # tracing the full-size models would triple the time; run.py tests graph mode
    x = tiny_images(config.batch + 50)
    history = model.fit(training_pipeline(x, config.batch, seed=0), epochs=1, verbose=0, shuffle=False)
    logged = {name: values[-1] for name, values in history.history.items()}
    assert {"loss", "rate", "distortion"} <= set(logged)
    assert all(math.isfinite(value) for value in logged.values())
    scores = model.evaluate(evaluation_pipeline(x, config.batch, 0), verbose=0, return_dict=True)
    assert all(math.isfinite(value) for value in scores.values())
    # The reported rate is the sum of the rate terms, penalties excluded. Both sides are
    # float32 means accumulated by Keras metrics in different orders: rel 1e-5 (~80 ulps),
    # abs 1e-4 for rates near zero (a sum of terms of tens of nats).
    rate_terms = [loss.type for loss in config.losses if loss.role != "penalty"]
    assert scores["rate"] == pytest.approx(sum(scores[name] for name in rate_terms), rel=1e-5, abs=1e-4)


def _tiny(channel, losses, **top):
    """The tiny test autoencoder with another noise layer and losses."""
    raw = copy.deepcopy(TINY)
    raw["layers"][3] = {"layer": 3, "encoder": True, **channel}
    raw.update(losses=losses, **top)
    return parse_config(raw, "tiny test config")


FLOW = {"steps": 2, "layers": [16, 16], "mean_only": False}
FAMILIES = {
    "vae+maf": ({"type": "vae", "density_estimator": {"type": "maf", "layer_kwargs": FLOW}},
                [{"type": "gaussian_ent"}, {"type": "maf"}]),
    "iaf+vamp": ({"type": "iaf", "layer_kwargs": FLOW}, [{"type": "iaf"}, {"type": "vamp", "loss_kwargs": {"inputs": 7}}]),
    "iaf+prior+mmd": ({"type": "iaf", "layer_kwargs": FLOW},
                      [{"type": "iaf"}, {"type": "gaussian_pdf"}, {"type": "mmd", "weight": 10}]),
}


@pytest.mark.parametrize("family", FAMILIES, ids=list(FAMILIES))
def test_each_family_trains_in_graph_mode_and_its_loss_decreases(family):
    config = _tiny(*FAMILIES[family])
    tf.keras.utils.set_random_seed(1)
    model = build_model(config)
    x = tiny_images(200, seed=2)
    history = model.fit(training_pipeline(x, BATCH, seed=0), epochs=4, verbose=0, shuffle=False).history
    assert all(math.isfinite(v) for values in history.values() for v in values)
    assert history["loss"][-1] < history["loss"][0]


@pytest.mark.parametrize("family", ["echo", "iaf+prior+mmd"])
def test_reseeding_restarts_the_noise_of_a_traced_step_without_tracing_it_again(family):
    config = parse_config(copy.deepcopy(TINY), "tiny test config") if family == "echo" else _tiny(*FAMILIES[family])
    model = build_model(config)
    x = tf.constant(tiny_images(BATCH, seed=3))
    traces = []

    @tf.function
    def losses(x):
        traces.append(1)
        return model.per_example_terms(x, training=True)["loss"]

    model.reseed(5)
    first, second = losses(x).numpy(), losses(x).numpy()
    model.reseed(5)
    again = losses(x).numpy()
    model.reseed(6)
    other = losses(x).numpy()
    assert len(traces) == 1
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second) and not np.array_equal(first, other)


def test_lr_density_gives_the_marginal_its_own_learning_rate():
    channel, losses = FAMILIES["vae+maf"]
    config = _tiny(channel, losses, lr=1e-2, lr_density=1e-5)
    model = build_model(config)
    marginal_before = [v.numpy() for v in model.marginal.trainable_variables]
    encoder_before = [v.numpy() for v in model.encoder_layers[0].trainable_variables]
    model.fit(training_pipeline(tiny_images(BATCH), BATCH, seed=0), epochs=1, verbose=0, shuffle=False)
    # Adam's first step moves every parameter with a non-zero gradient by about its learning rate.
    marginal_steps = np.concatenate([np.abs(v.numpy() - b).ravel() for v, b in zip(model.marginal.trainable_variables, marginal_before)])
    encoder_steps = np.concatenate([np.abs(v.numpy() - b).ravel() for v, b in zip(model.encoder_layers[0].trainable_variables, encoder_before)])
    assert marginal_steps.max() <= 1.01e-5 and marginal_steps.max() > 0
    assert encoder_steps.max() == pytest.approx(1e-2, rel=0.01)


def test_a_decoder_that_does_not_rebuild_the_input_is_refused():
    raw = copy.deepcopy(TINY)
    raw["layers"][6]["layer_kwargs"]["strides"] = 1  # 14x14 output instead of 28x28
    with pytest.raises(ConfigError, match=r"decoder produces images of shape \[14, 14, 1\]"):
        build_model(parse_config(raw, "tiny"))


def test_fitting_an_echo_model_on_batches_of_another_size_gets_the_channels_message_every_time():
    # Graph mode (model.fit): the channel's check must win the race against every shape
    # error of the ops around it, on every step. Arrays of 65 images in batches of 15 (the
    # last one of 5) give a batch size unknown when tracing, checked at run time; a dataset
    # that drops its remainder, a size known when tracing.
    model = build_model(parse_config(TINY, "tiny"))
    images = tiny_images(65)
    message = f"examples reached the channel, but the batch of the config is {BATCH}"
    for _ in range(20):
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"a batch of\] \[15\] \[{message}"):
            model.fit(images, epochs=1, batch_size=15, verbose=0)
    odd = tf.data.Dataset.from_tensor_slices(images).batch(15, drop_remainder=True)
    with pytest.raises(ValueError, match=f"a batch of 15 {message}"):
        build_model(parse_config(TINY, "tiny")).fit(odd, epochs=1, verbose=0, shuffle=False)
    assert math.isfinite(model.fit(training_pipeline(images, BATCH, seed=0), epochs=1, verbose=0, shuffle=False).history["loss"][-1])
