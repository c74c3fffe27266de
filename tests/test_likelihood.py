"""Importance-weighted likelihood, mutual information and active units against the closed
forms of a linear-Gaussian model.

The model: z ~ N(0, I_D), x = W z + b + e with e ~ N(0, I_P) (the "mse" distortion is a
unit-variance Gaussian), so p(x) = N(b, W Wᵀ + I). Its encoder is linear, q(z|x) =
N(A x + c, diag s²); for data from p(x), z is Gaussian with covariance A Σx Aᵀ + diag s²,
and I(X;Z) = ½ log det(A Σx Aᵀ + diag s²) − ½ Σ log s². The framework builds it from a
config (1×1 convolutions on 1×1×P "images") and the weights are set by hand.
"""

import math
import pickle

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import evaluate
from experiment.errors import EXIT_DATA
from model import build_model
from model_utils.config import parse_config
from experiment.likelihood import (
    active_units,
    conditional_means,
    importance_weighted_log_likelihood,
    information_scores,
    mean_codes,
    posterior_samples,
)
from support import BATCH as TINY_BATCH, TINY, load_pickle, run_tiny, tiny_images

P, D, BATCH = 4, 2, 50
RNG = np.random.default_rng(7)
# Orthogonal columns, so that the exact posterior is a diagonal Gaussian.
W = np.linalg.qr(RNG.normal(size=(P, P)))[0][:, :D] * np.array([2.0, 1.2])
B = RNG.normal(size=P)
COVARIANCE_X = W @ W.T + np.eye(P)
POSTERIOR_COVARIANCE = np.linalg.inv(np.eye(D) + W.T @ W)  # diagonal
EXACT_A = POSTERIOR_COVARIANCE @ W.T
EXACT_C = -EXACT_A @ B
EXACT_VAR = np.diag(POSTERIOR_COVARIANCE)


def _config(channel=None, losses=None):
    return {
        "epochs": 1, "batch": BATCH, "lr": 1e-3, "input_shape": [1, 1, P], "latent_dims": [P, D], "decoder_dims": [P],
        "layers": [
            {"layer": 0, "encoder": True, "type": "Conv2D", "activation": "linear", "layer_kwargs": {"kernel_size": 1}},
            {"layer": 1, "encoder": True, "type": "vae", **(channel or {})},
            {"layer": 0, "encoder": False, "type": "Conv2D", "activation": "linear", "layer_kwargs": {"kernel_size": 1}},
        ],
        "recon": "mse",
        "losses": losses or [{"type": "vae"}],
    }


def _linear_model(a=EXACT_A, c=EXACT_C, var=EXACT_VAR, channel=None, losses=None):
    """The linear-Gaussian model with encoder mean A x + c and variance var."""
    model = build_model(parse_config(_config(channel, losses), "linear-Gaussian test model"))
    encoder, decoder = model.encoder_layers[0], model.decoder_layers[0]
    encoder.kernel.assign(np.eye(P).reshape(1, 1, P, P))
    encoder.bias.assign(np.zeros(P))
    model.channel.mean_head.kernel.assign(a.T)
    model.channel.mean_head.bias.assign(c)
    model.channel.log_var_head.kernel.assign(np.zeros((P, D)))
    model.channel.log_var_head.bias.assign(np.log(var))
    decoder.kernel.assign(W.T.reshape(1, 1, D, P))
    decoder.bias.assign(B)
    return model


def _linear_iaf_model(steps: int, scale: float, seed: int):
    """The linear-Gaussian model with the exact posterior as the IAF's base, pushed through
    a flow of `steps` steps with random weights of standard deviation `scale`."""
    flow = {"steps": steps, "layers": [8], "mean_only": False}
    model = _linear_model(channel={"type": "iaf", "layer_kwargs": flow}, losses=[{"type": "iaf"}, {"type": "gaussian_pdf"}])
    rng = np.random.default_rng(seed)
    for weight in model.channel.flow.weights:
        weight.assign(rng.normal(scale=scale, size=weight.shape))
    return model


def _data(n, seed=1):
    x = np.random.default_rng(seed).multivariate_normal(B, COVARIANCE_X, size=n)
    return x.reshape(n, 1, 1, P).astype(np.float32), stats.multivariate_normal(B, COVARIANCE_X).logpdf(x)


def _elbo(x, a, c, var):
    """ELBO(x) = E_q log N(x; W z + b, I) − KL(q ‖ N(0, I)), q = N(A x + c, diag var)."""
    x = x.reshape(len(x), P).astype(np.float64)
    mean = x @ a.T + c
    expected_log_likelihood = stats.multivariate_normal(np.zeros(P), np.eye(P)).logpdf(x - mean @ W.T - B) - 0.5 * np.trace(W.T @ W @ np.diag(var))
    kl = 0.5 * np.sum(mean**2 + var - 1.0 - np.log(var), axis=1)
    return expected_log_likelihood - kl


def test_with_the_exact_posterior_every_weight_is_p_of_x():
    tf.random.set_seed(0)
    model = _linear_model()
    x, log_p = _data(200)
    for k in (1, 7):
        # float32 log-weights of about -10: rounding of a few 1e-6 relative.
        np.testing.assert_allclose(importance_weighted_log_likelihood(model, x, k, batch=BATCH), log_p, atol=2e-4)


APPROXIMATE = dict(a=0.7 * EXACT_A, c=EXACT_C + 0.3, var=2.0 * EXACT_VAR)


def test_one_sample_is_the_elbo_in_expectation_and_more_samples_approach_log_p():
    tf.random.set_seed(1)
    model = _linear_model(**APPROXIMATE)
    x, log_p = _data(2000)
    elbo = _elbo(x, **APPROXIMATE)
    one = importance_weighted_log_likelihood(model, x, 1, batch=BATCH)
    standard_error = np.std(one - elbo) / math.sqrt(len(x))
    assert abs(np.mean(one - elbo)) < 4 * standard_error
    gaps = {}
    for k in (1, 10, 100):
        tf.random.set_seed(2)
        gaps[k] = float(np.mean(log_p[:300] - importance_weighted_log_likelihood(model, x[:300], k, batch=BATCH)))
    # Burda et al. (2016), Theorem 1: the bound tightens as K grows, and it is a bound.
    assert gaps[1] > gaps[10] > gaps[100] > -0.01
    assert gaps[1] > 0.5 and gaps[100] < 0.1 * gaps[1]


def test_many_samples_recover_log_p_within_monte_carlo_error():
    tf.random.set_seed(3)
    model = _linear_model(**APPROXIMATE)
    x, log_p = _data(100, seed=2)
    estimate = importance_weighted_log_likelihood(model, x, 2000, batch=BATCH, chunk=10_000)
    assert abs(np.mean(estimate - log_p)) < 0.01
    assert np.max(np.abs(estimate - log_p)) < 0.1


def test_an_iaf_encoder_also_recovers_log_p():
    # One step, so no coordinate reversal: the flow perturbs the exact posterior.
    model = _linear_iaf_model(steps=1, scale=0.2, seed=4)
    tf.random.set_seed(4)
    x, log_p = _data(100, seed=3)
    one = importance_weighted_log_likelihood(model, x, 1, batch=BATCH)
    many = importance_weighted_log_likelihood(model, x, 2000, batch=BATCH, chunk=10_000)
    assert np.mean(log_p - one) > 0.05  # the flow moves q away from the exact posterior
    assert abs(np.mean(many - log_p)) < 0.01 and np.max(np.abs(many - log_p)) < 0.1


def test_the_maf_marginal_at_its_start_is_the_standard_normal():
    # A fresh MAF is a coordinate permutation of N(0, I), so p(z) is N(0, I) and the exact
    # posterior makes every weight p(x).
    channel = {"density_estimator": {"type": "maf", "layer_kwargs": {"steps": 2, "layers": [8], "mean_only": False}}}
    model = _linear_model(channel=channel, losses=[{"type": "gaussian_ent"}, {"type": "maf"}])
    x, log_p = _data(100)
    np.testing.assert_allclose(importance_weighted_log_likelihood(model, x, 3, batch=BATCH), log_p, atol=2e-4)


def test_the_vamp_prior_likelihood_matches_its_gaussian_mixture():
    model = _linear_model(losses=[{"type": "gaussian_ent"}, {"type": "vamp", "loss_kwargs": {"inputs": 3}}])
    pseudo = model.marginal.pseudo_inputs().numpy().reshape(3, P).astype(np.float64)
    means = pseudo @ EXACT_A.T + EXACT_C
    # p(x) = (1/3) Σ_k N(x; W μ_k + b, W diag(s²) Wᵀ + I).
    covariance = W @ np.diag(EXACT_VAR) @ W.T + np.eye(P)
    x, _ = _data(100, seed=4)
    flat = x.reshape(100, P).astype(np.float64)
    components = np.stack([stats.multivariate_normal(W @ m + B, covariance).logpdf(flat) for m in means])
    log_p = np.logaddexp.reduce(components, axis=0) - math.log(3)
    tf.random.set_seed(5)
    estimate = importance_weighted_log_likelihood(model, x, 2000, batch=BATCH, chunk=10_000)
    assert abs(np.mean(estimate - log_p)) < 0.02


# ---- mutual information and active units ----------------------------------------------------


def _true_information(a, var):
    covariance_z = a @ COVARIANCE_X @ a.T + np.diag(var)
    return 0.5 * (np.linalg.slogdet(covariance_z)[1] - np.sum(np.log(var)))


@pytest.mark.parametrize("a, var", [(EXACT_A, EXACT_VAR), (0.7 * EXACT_A, 2.0 * EXACT_VAR)], ids=["exact", "noisier"])
def test_the_mutual_information_estimate_recovers_the_closed_form(a, var):
    tf.random.set_seed(6)
    model = _linear_model(a=a, c=EXACT_C, var=var)
    x, _ = _data(2000, seed=5)
    rate = 123.0
    scores = information_scores(model, x, rate, None, BATCH)
    truth = _true_information(a, var)
    assert 0.3 < truth < 3  # far below log N = 7.6, where the mixture's bias is small
    assert scores["mutual_information"] == pytest.approx(truth, abs=0.08)
    assert scores["marginal_gap"] == pytest.approx(rate - scores["mutual_information"])


def test_an_iaf_flow_does_not_change_the_information():
    model = _linear_iaf_model(steps=2, scale=0.5, seed=8)
    tf.random.set_seed(7)
    x, _ = _data(2000, seed=6)
    scores = information_scores(model, x, 0.0, None, BATCH)
    assert scores["mutual_information"] == pytest.approx(_true_information(EXACT_A, EXACT_VAR), abs=0.08)


def test_active_units_count_the_dimensions_that_carry_signal():
    a = np.zeros((D, P))
    a[0] = [1.0, -0.5, 0.2, 0.0]  # dimension 0 follows x; dimension 1 barely moves
    a[1] = [0.01, 0.0, 0.0, 0.0]  # Var = 1e-4 · Var(x_0) < 0.01
    model = _linear_model(a=a, c=np.zeros(D), var=np.ones(D))
    x, _ = _data(1000, seed=7)
    posterior = posterior_samples(model, x, BATCH)
    assert active_units(conditional_means(model, x, posterior)) == 1
    assert active_units(np.column_stack([x.reshape(-1, P)[:, 0], 0.2 * x.reshape(-1, P)[:, 1]])) == 2


def test_the_distortion_at_the_mean_code_decodes_mu_for_the_gaussian_channel():
    model = _linear_model(a=EXACT_A, c=EXACT_C, var=EXACT_VAR)
    x, _ = _data(300, seed=8)
    mean, _ = model.gaussian_parameters_of_images(tf.constant(x))
    direct = model.distortion.compute(tf.constant(x), model.decode(mean)).numpy().mean()
    scores = information_scores(model, x, 0.0, None, BATCH)
    assert scores["distortion_at_mean"] == pytest.approx(float(direct), rel=1e-5)


def test_echos_mean_code_is_f_plus_s_times_the_mean_of_the_noise():
    # E[z|x] = f(x) + S(x)·E[ε]: averaged over many draws of neighbours (the other examples
    # of random batches), an example's z tends to it.
    tf.keras.utils.set_random_seed(0)
    model = build_model(parse_config(TINY, "tiny echo"))
    x = tiny_images(TINY_BATCH * 10, seed=5)
    posterior = posterior_samples(model, x, TINY_BATCH)
    codes = mean_codes(model, posterior, posterior["z_mean"])
    rng = np.random.default_rng(1)
    draws = []
    for _ in range(400):
        others = rng.choice(np.arange(1, len(x)), size=TINY_BATCH - 1, replace=False)
        draws.append(model.encode(tf.constant(x[np.concatenate([[0], others])]))["z"].numpy()[0])
    spread = np.std(draws, axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(np.mean(draws, axis=0) - codes[0]) < 4 * spread + 1e-4)
    assert np.abs(codes[0] - posterior["z_mean"][0]).max() > 10 * spread.max()  # the noise's mean matters here


# ---- where it runs ---------------------------------------------------------------------------

TINY_VAE = {**TINY, "layers": [*TINY["layers"][:3], {"layer": 3, "encoder": True, "type": "vae"}, *TINY["layers"][4:]],
            "losses": [{"type": "vae"}]}


def _run(tmp_path, config, *extra):
    return run_tiny(tmp_path, "--epochs", "1", *extra, config=config)


def test_run_with_iw_stores_every_measure(tmp_path, tiny_data, capsys):
    assert _run(tmp_path, TINY_VAE, "--iw", "20") == 0
    results = load_pickle(tmp_path)
    assert results["test_nll_iw_k"] == 20 and results["test_information_size"] == 50
    # One epoch leaves this VAE collapsed (q(z|x) ≈ p(z)), so weighting gains almost nothing:
    # the bound's properties are tested on the linear-Gaussian model above.
    assert abs(results["test_nll_iw"] + results["test_elbo"]) < 1.0
    assert results["test_marginal_gap"] == pytest.approx(results["test_rate"] - results["test_mutual_information"])
    assert 0 <= results["test_active_units"] <= 4
    assert "NLL (IW, K=20)" in capsys.readouterr().out


def test_echo_with_iw_says_why_there_is_no_likelihood_and_measures_the_rest(tmp_path, tiny_data, capsys):
    assert _run(tmp_path, TINY, "--iw", "20") == 0
    assert "no tractable q(z|x)" in capsys.readouterr().err
    results = load_pickle(tmp_path)
    assert "test_nll_iw" not in results and "test_marginal_gap" not in results
    assert results["test_mutual_information"] == results["test_rate"]  # exact for Echo
    assert "test_active_units" in results


def test_evaluate_adds_the_measures_and_leaves_every_other_key(tmp_path, tiny_data, capsys):
    assert _run(tmp_path, TINY_VAE) == 0
    path = tmp_path / "out.pickle"
    before = pickle.loads(path.read_bytes())
    assert evaluate.main([str(path), "--iw", "10", "--seed", "3"]) == 0
    after = pickle.loads(path.read_bytes())
    added = set(after) - set(before)
    assert added == {"test_nll_iw", "test_nll_iw_k", "test_mutual_information", "test_marginal_gap",
                     "test_active_units", "test_distortion_at_mean", "test_information_size"}
    for key in before:
        if isinstance(before[key], np.ndarray):
            np.testing.assert_array_equal(before[key], after[key])
        else:
            assert before[key] == after[key], key
    assert "added test_active_units" in capsys.readouterr().out


def test_evaluate_names_a_missing_weights_file(tmp_path, tiny_data, capsys):
    assert _run(tmp_path, TINY_VAE) == 0
    (tmp_path / "out.weights.h5").unlink()
    assert evaluate.main([str(tmp_path / "out.pickle")]) == EXIT_DATA
    assert "out.weights.h5: no weights beside" in capsys.readouterr().err


def test_the_linear_model_decodes_w_z_plus_b():
    # The hand-set weights are what the closed forms assume.
    model = _linear_model()
    z = np.random.default_rng(9).normal(size=(BATCH, D)).astype(np.float32)
    np.testing.assert_allclose(model.decode(z).numpy().reshape(BATCH, P), z @ W.T + B, rtol=1e-5, atol=1e-5)
