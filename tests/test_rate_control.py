"""Controlling the rate while training: the per-epoch schedule of the rate weights
(`anneal_schedule`, `anneal_function`) and constrained optimisation with learned Lagrange
multipliers (`lagrangian_fit`, `constraints`)."""

import copy
import json
import pickle

import numpy as np
import pytest
import tensorflow as tf

import run
from model import build_model, constraint_violation
from model_utils.config import ConfigError, parse_config
from model_utils.schedules import RateSchedule
from support import BATCH, TINY, tiny_images


def test_a_linear_schedule_holds_then_ramps_between_its_breakpoints():
    schedule = RateSchedule(((0, 0.0), (2, 0.0), (5, 1.0)), "linear")
    assert [schedule(e) for e in range(8)] == pytest.approx([0, 0, 0, 1 / 3, 2 / 3, 1, 1, 1])
    assert RateSchedule(((1, 0.5),))(0) == 0.5  # before the first breakpoint: its value


def test_a_step_schedule_keeps_each_value_until_the_next_breakpoint():
    schedule = RateSchedule(((0, 0.1), (3, 0.5), (4, 1.0)), "step")
    assert [schedule(e) for e in range(6)] == [0.1, 0.1, 0.1, 0.5, 1.0, 1.0]


def _config(**top):
    raw = copy.deepcopy(TINY)
    raw.update(top)
    return raw


@pytest.mark.parametrize("top, path, fragment", [
    ({"anneal_schedule": [[0, 0], [0, 1]]}, "anneal_schedule[1]", "does not come after epoch 0"),
    ({"anneal_schedule": [[0, -1]]}, "anneal_schedule[0]", "multiplier >= 0"),
    ({"anneal_function": "linear"}, "anneal_function", "without an anneal_schedule"),
    ({"anneal_schedule": [[0, 1]], "anneal_function": "cosine"}, "anneal_function", "expected one of"),
    ({"lagrangian_fit": 1}, "constraints", "are missing"),
    ({"constraints": [{"loss": "rate", "relation": "eq", "value": 2}]}, "constraints", "lagrangian_fit is 0"),
    ({"lagrangian_fit": 1, "constraints": [{"loss": "elbo", "relation": "eq", "value": 2}]}, "constraints[0].loss", "expected one of"),
    ({"lagrangian_fit": 1, "constraints": [{"loss": "rate", "relation": "eq", "value": 2}] * 2}, "constraints[1]", "a second eq constraint"),
    ({"lagrangian_fit": 1, "constraints": [{"loss": "rate", "relation": "leq", "value": 2, "lr": 0}]}, "constraints[0].lr", "> 0"),
])
def test_invalid_schedules_and_constraints_are_refused_with_their_key(top, path, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(**top), "tiny.json")
    assert str(caught.value).startswith(f"tiny.json: {path}") and fragment in str(caught.value)


def test_the_reference_keys_off_build_the_same_model():
    off = parse_config(_config(lagrangian_fit=0, anneal_schedule=None, anneal_function=None), "tiny.json")
    assert off.anneal is None and off.constraints == ()
    model = build_model(off)
    assert model.rate_scale is None and model.multipliers is None
    assert model.count_params() == build_model(parse_config(TINY, "tiny.json")).count_params()


def test_the_loss_adds_the_scaled_rate_and_each_multiplier_times_its_violation():
    raw = _config(beta=2.0, anneal_schedule=[[0, 0.25]], lagrangian_fit=1,
                  constraints=[{"loss": "rate", "relation": "eq", "value": 3.0},
                               {"loss": "distortion", "relation": "leq", "value": 500.0}])
    tf.keras.utils.set_random_seed(0)
    model = build_model(parse_config(raw, "tiny.json"))
    assert model.scheduled_weights(0) == {"beta": 0.5}
    model.multipliers.assign([0.7, 0.2])
    model.reseed(1)
    terms = model.per_example_terms(tf.constant(tiny_images(BATCH)))
    rate, distortion = terms["rate"].numpy(), terms["distortion"].numpy()
    expected = distortion + 0.5 * rate + 0.7 * (rate - 3.0) + 0.2 * (distortion - 500.0)
    np.testing.assert_allclose(terms["loss"], expected, rtol=1e-5)


def test_the_penalty_adds_rho_times_the_batch_violation_to_the_multiplier_in_the_loss():
    raw = _config(lagrangian_fit=1, constraints=[{"loss": "rate", "relation": "eq", "value": 3.0, "penalty": 0.5},
                                                  {"loss": "rate", "relation": "geq", "value": 100.0, "penalty": 0.5}])
    tf.keras.utils.set_random_seed(0)
    model = build_model(parse_config(raw, "tiny.json"))
    model.multipliers.assign([0.7, 0.0])
    model.reseed(1)
    x = tf.constant(tiny_images(BATCH))
    terms = model.per_example_terms(x)
    rate, distortion = terms["rate"].numpy().astype(np.float64), terms["distortion"].numpy()
    # Equality: (λ + ρ·ḡ)·g; the inequality rate >= 100 is violated (g = 100 − rate > 0): (0 + ρ·ḡ)·g.
    expected = (distortion + rate + (0.7 + 0.5 * (rate.mean() - 3.0)) * (rate - 3.0)
                + 0.5 * (100.0 - rate.mean()) * (100.0 - rate))
    np.testing.assert_allclose(terms["loss"], expected, rtol=1e-5)
    # The gradient is that of the augmented Lagrangian: w.r.t. the batch's rates, (λ + ρ·ḡ)/B per example.
    with tf.GradientTape() as tape:
        tape.watch(terms["rate"])
        lagrangian = tf.reduce_mean(model._constraint_weight(0, model.experiment.constraints[0], terms["rate"] - 3.0)
                                    * (terms["rate"] - 3.0))
    np.testing.assert_allclose(tape.gradient(lagrangian, terms["rate"]), (0.7 + 0.5 * (rate.mean() - 3.0)) / BATCH,
                               rtol=1e-5)


def test_one_training_step_moves_each_multiplier_by_its_rate_times_the_batch_violation():
    raw = _config(lagrangian_fit=1, constraints=[{"loss": "rate", "relation": "eq", "value": 50.0, "lr": 0.1},
                                                  {"loss": "rate", "relation": "geq", "value": 0.5, "lr": 0.1}])
    tf.keras.utils.set_random_seed(0)
    model = build_model(parse_config(raw, "tiny.json"))
    x = tf.constant(tiny_images(BATCH))
    model.reseed(2)
    rate = float(tf.reduce_mean(model.per_example_terms(x, training=True)["rate"]))
    model.reseed(2)
    model.train_step((x,))
    values = model.multiplier_values()
    # The rate (a few nats) is below 50: λ_eq goes negative; above 0.5: λ_geq would too, but is kept at 0.
    assert values["lagrange_rate_eq"] == pytest.approx(0.1 * (rate - 50.0), rel=1e-5)
    assert values["lagrange_rate_geq"] == 0.0
    violation = constraint_violation(model.experiment.constraints[1], {"rate": tf.constant([2.0])})
    assert float(violation[0]) == pytest.approx(0.5 - 2.0)


def test_a_run_records_the_scheduled_beta_and_the_multipliers_every_epoch(tmp_path, tiny_data):
    raw = _config(epochs=3, beta=2.0, anneal_schedule=[[0, 0], [2, 1]], lagrangian_fit=1,
                  constraints=[{"loss": "rate", "relation": "leq", "value": 1.0, "lr": 0.05}])
    argv = ["--config", json.dumps(raw), "--dataset", "tiny", "--results-dir", str(tmp_path), "--filename", "out",
            "--verbose", "0"]
    assert run.main(argv) == 0
    with open(tmp_path / "out.pickle", "rb") as stream:
        results = pickle.load(stream)
    assert results["beta"] == [0.0, 1.0, 2.0]
    multipliers = results["lagrange_rate_leq"]
    # The tiny Echo model's rate (several nats) stays above 1 nat: the multiplier only grows.
    assert len(multipliers) == 3 and 0 < multipliers[0] < multipliers[1] < multipliers[2]
    assert results["config"]["constraints"][0]["value"] == 1.0
