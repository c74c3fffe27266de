"""The model built from every config (`model.py`): it trains, and its terms add up."""

import math

import numpy as np
import pytest
import tensorflow as tf

import echo_noise
from datasets.pipeline import evaluation_pipeline, training_pipeline
from model import build_model
from model_utils.config import ConfigError, load_config, parse_config, read_config
from support import PROJECT_CONFIGS, reference_config_params, require_file, tiny_images


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
    scores = model.evaluate(evaluation_pipeline(x, config.batch), verbose=0, return_dict=True)
    assert all(math.isfinite(value) for value in scores.values())
    # The reported rate is the sum of the rate terms, penalties excluded.
    rate_terms = [loss.type for loss in config.losses if loss.role != "penalty"]
    assert scores["rate"] == pytest.approx(sum(scores[name] for name in rate_terms), rel=1e-5, abs=1e-4)
