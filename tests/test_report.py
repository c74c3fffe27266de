"""report.py on hand-made results pickles whose values are chosen here, its bad-input
handling, and the figures of one tiny trained run."""

import csv
import json
import math
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf
from matplotlib.image import imread

import report
import run
from analysis.plots import CURVE_PANEL_INCHES, DPI, RD_PANEL_INCHES
from experiment.results import save_pickle
from analysis.summary import BASE_COLUMNS
from support import TINY, fake_results

# (config, dataset, beta, seed) -> (test rate, test distortion), nats; two seeds per point.
CHOSEN = {
    ("echo", "binary_mnist", 0.5, 0): (12.125, 95.5),
    ("echo", "binary_mnist", 0.5, 1): (13.875, 96.5),
    ("echo", "binary_mnist", 2.0, 0): (6.1234567890123456, 120.0),
    ("echo", "binary_mnist", 2.0, 1): (6.5, 122.0),
    ("vae", "binary_mnist", 0.5, 0): (25.0, 90.0),
    ("vae", "binary_mnist", 0.5, 1): (27.0, 94.0),
    ("vae", "binary_mnist", 2.0, 0): (3.0, 130.0),
    ("vae_vamp", "omniglot", 1.0, 0): (30.0, 110.0),
}


@pytest.fixture
def results_dir(tmp_path):
    directory = tmp_path / "results"
    for (config, dataset, beta, seed), (rate, distortion) in CHOSEN.items():
        name = f"{config}_{dataset}_beta{beta:g}_seed{seed}"
        extra = {"test_nll_iw": rate + distortion - 1.0} if config == "vae" else {}
        save_pickle(directory / f"{name}.pickle", fake_results(config, dataset, beta, seed, rate, distortion, **extra))
    return directory


def _rows(path):
    with open(path, newline="") as stream:
        return {row["name"]: row for row in csv.DictReader(stream)}


def test_the_csv_holds_one_row_per_run_with_exactly_the_pickled_values(results_dir):
    assert report.main([str(results_dir)]) == 0
    rows = _rows(results_dir / "report" / "summary.csv")
    assert len(rows) == len(CHOSEN)
    header = list(next(iter(rows.values())))
    assert header[: len(BASE_COLUMNS)] == list(BASE_COLUMNS) and "test_nll_iw" in header
    row = rows["echo_binary_mnist_beta2_seed0"]
    assert float(row["test_rate"]) == 6.1234567890123456  # every digit survives
    assert float(row["test_elbo"]) == -(6.1234567890123456 + 120.0)
    assert (row["config"], row["method"], row["channel"], row["marginal"]) == ("echo.json", "echo", "echo", "none (exact rate)")
    assert (row["dataset"], row["beta"], row["seed"], row["epochs"], row["train_size"], row["test_size"]) == (
        "binary_mnist", "2.0", "0", "3", "1000", "500")
    assert float(row["train_seconds"]) == 4.5
    assert rows["vae_vamp_omniglot_beta1_seed0"]["marginal"] == "VampPrior"
    assert rows["vae_vamp_omniglot_beta1_seed0"]["channel"] == "gaussian"
    assert float(rows["vae_binary_mnist_beta0.5_seed1"]["test_nll_iw"]) == 27.0 + 94.0 - 1.0
    assert rows["echo_binary_mnist_beta0.5_seed0"]["test_nll_iw"] == ""


def _table_row(markdown, method, beta):
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) >= 10 and cells[0] == method and cells[5] == beta:
            return cells
    raise AssertionError(f"no row for {method} at beta {beta}")


def test_the_markdown_table_gives_mean_and_sample_std_over_seeds_per_method_and_beta(results_dir):
    assert report.main([str(results_dir)]) == 0
    markdown = (results_dir / "report" / "summary.md").read_text()
    assert markdown.index("## binary_mnist") < markdown.index("## omniglot")
    # echo at beta 0.5: rates 12.125 and 13.875 -> mean 13.0, sample std 1.75·√2 = 1.2374.
    cells = _table_row(markdown, "echo", "0.5")
    assert cells[6] == "0, 1"
    assert cells[7] == "13.00 ± 1.24" and cells[8] == "96.00 ± 0.71"
    # -ELBO per seed: 107.625 and 110.375 -> 109.0 ± 1.94.
    assert cells[9] == "109.00 ± 1.94"
    vae = _table_row(markdown, "vae", "2")
    assert vae[6] == "0" and vae[7] == "3.00" and vae[9] == "133.00"  # one seed: no ±
    assert _table_row(markdown, "vae_vamp", "1")[2] == "VampPrior"
    # Scores that only some runs have get a column, with "–" where a group lacks them.
    assert "| rate | distortion | -ELBO | NLL (IW) |" in markdown
    assert _table_row(markdown, "vae", "0.5")[10] == "117.00 ± 4.24"  # 25+90-1 = 114 and 27+94-1 = 120
    assert cells[10] == "–"
    assert "NLL (IW)" not in markdown.split("## omniglot")[1]
    # Echo before the Gaussian channel, beta ascending within a method.
    assert markdown.index("| echo | echo | none (exact rate) | 3 | 1000 | 0.5 |") < markdown.index("| echo | echo | none (exact rate) | 3 | 1000 | 2 |")
    assert markdown.index("| echo |") < markdown.index("| vae |")


def test_the_figures_decode_at_their_documented_size(results_dir):
    assert report.main([str(results_dir), "--out", str(results_dir / "figures")]) == 0
    rd = imread(results_dir / "figures" / "rate_distortion.png")
    # One panel per dataset (two here), RD_PANEL_INCHES each at DPI.
    assert rd.shape[:2] == (round(RD_PANEL_INCHES[1] * DPI), round(2 * RD_PANEL_INCHES[0] * DPI))
    assert rd[..., :3].std() > 0.05  # something is drawn
    curves = imread(results_dir / "figures" / "learning_curves.png")
    # One row per dataset and method (echo, vae, vae_vamp), three columns.
    assert curves.shape[:2] == (round(3 * CURVE_PANEL_INCHES[1] * DPI), round(3 * CURVE_PANEL_INCHES[0] * DPI))


# ---- bad input --------------------------------------------------------------------------


def test_an_empty_directory_is_one_error_line(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == report.EXIT_NOTHING
    error = capsys.readouterr().err.strip()
    assert error == f"error: {tmp_path}: no usable results pickles found"
    assert not (tmp_path / "report").exists()


def test_a_missing_directory_is_one_error_line(tmp_path, capsys):
    assert report.main([str(tmp_path / "nope")]) == report.EXIT_NOTHING
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: no such directory"


def test_unusable_files_are_skipped_with_a_warning_each_and_the_rest_is_reported(results_dir, capsys):
    complete = (results_dir / "vae_binary_mnist_beta2_seed0.pickle").read_bytes()
    (results_dir / "truncated.pickle").write_bytes(complete[: len(complete) // 2])
    (results_dir / "garbage.pickle").write_bytes(b"\x00not a pickle at all")
    (results_dir / "a_list.pickle").write_bytes(pickle.dumps([1, 2, 3]))
    (results_dir / "no_scores.pickle").write_bytes(pickle.dumps({"config": {}, "loss": []}))
    # A pickle that would run code when loaded is refused, and the code does not run.
    (results_dir / "code.pickle").write_bytes(pickle.dumps(os.system))
    assert report.main([str(results_dir)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 5 and all(line.startswith("warning: skipped ") for line in warnings)
    by_file = {name: next(line for line in warnings if f"{name}.pickle" in line)
               for name in ("truncated", "garbage", "a_list", "no_scores", "code")}
    assert "not a readable results pickle" in by_file["truncated"]
    assert "not a results file (a pickled list" in by_file["a_list"]
    assert "not a results file (no test_rate, test_distortion, test_elbo, rate, distortion)" in by_file["no_scores"]
    assert "refers to posix.system" in by_file["code"]
    assert len(_rows(results_dir / "report" / "summary.csv")) == len(CHOSEN)


def test_only_unusable_files_is_an_error(tmp_path, capsys):
    (tmp_path / "broken.pickle").write_bytes(b"\x80\x05junk")
    assert report.main([str(tmp_path)]) == report.EXIT_NOTHING
    err = capsys.readouterr().err
    assert "warning: skipped" in err and "no usable results pickles" in err


def test_either_a_directory_or_a_run(tmp_path):
    with pytest.raises(SystemExit) as caught:
        report.main([])
    assert caught.value.code == 2


# ---- one run: reconstructions and samples -------------------------------------------------


TINY_VAMP = {**TINY, "layers": [*TINY["layers"][:3], {"layer": 3, "encoder": True, "type": "vae"}, *TINY["layers"][4:]],
             "losses": [{"type": "gaussian_ent"}, {"type": "vamp", "loss_kwargs": {"inputs": 5}}]}


@pytest.mark.parametrize("config, marginal", [(TINY, "Echo noise"), (TINY_VAMP, "VampPrior")], ids=["echo", "vamp"])
def test_a_run_gets_reconstructions_and_samples_with_their_marginal_in_the_title(config, marginal, tmp_path, tiny_data, capsys):
    argv = ["--config", json.dumps(config), "--dataset", "tiny", "--results-dir", str(tmp_path), "--filename", "tiny",
            "--epochs", "1", "--verbose", "0"]
    assert run.main(argv) == 0
    assert report.main(["--run", str(tmp_path / "tiny.pickle")]) == 0
    out = capsys.readouterr().out
    for figure in ("reconstructions.png", "samples.png"):
        path = tmp_path / "report" / "tiny" / figure
        assert f"wrote {path}" in out
        image = imread(path)
        assert image.shape[1] == 8 * DPI and image[..., :3].std() > 0.05


def test_a_run_without_its_weights_is_one_error_line(tmp_path, capsys):
    save_pickle(tmp_path / "lonely.pickle", fake_results("echo", "binary_mnist", 1.0, 0, 6.0, 100.0))
    assert report.main(["--run", str(tmp_path / "lonely.pickle")]) == report.EXIT_NOTHING
    assert "lonely.weights.h5: no weights beside" in capsys.readouterr().err


# ---- sampling the marginals ---------------------------------------------------------------


def test_maf_samples_follow_the_maf_density():
    from model_utils.priors import MAFMarginal

    marginal = MAFMarginal({"steps": 2, "hidden_units": [8], "activation": "tanh", "mean_only": False}, dtype="float64")
    marginal.build((None, 2))
    rng = np.random.default_rng(1)
    for weight in marginal.weights:
        weight.assign(rng.normal(scale=0.3, size=weight.shape))
    # Moments of the density by quadrature on a grid (the density direction, tested to
    # integrate to 1); the grid holds all but 1e-4 of the mass.
    grid = np.linspace(-12, 12, 481)
    points = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    weights = np.exp(marginal(points).numpy()) * (grid[1] - grid[0]) ** 2
    assert weights.sum() == pytest.approx(1.0, abs=1e-4)
    mean, second, fourth = (weights @ points**k for k in (1, 2, 4))
    tf.random.set_seed(2)
    samples = marginal.sample(40_000).numpy()
    # Five standard errors of the sample mean and of the sample second moment.
    assert np.all(np.abs(samples.mean(axis=0) - mean) < 5 * np.sqrt((second - mean**2) / len(samples)))
    assert np.all(np.abs((samples**2).mean(axis=0) - second) < 5 * np.sqrt((fourth - second**2) / len(samples)))
    assert np.abs(mean).max() > 0.1 or np.abs(second - 1).max() > 0.1  # not N(0, I) by accident


def test_vamp_prior_samples_have_the_mixture_moments():
    from model_utils.priors import VampPrior

    prior = VampPrior(3, (2, 2, 1), dtype="float64")
    means = np.array([[-2.0, 0.0], [1.0, 1.0], [3.0, -1.0]])
    log_vars = np.log(np.array([[0.25, 1.0], [1.0, 0.5], [0.09, 2.0]]))

    class Model:
        class channel:
            push_forward = staticmethod(lambda z0: z0)

        @staticmethod
        def gaussian_parameters_of_images(images):
            return tf.constant(means), tf.constant(log_vars)

    tf.random.set_seed(3)
    samples = prior.sample(60_000, Model).numpy()
    mixture_mean = means.mean(axis=0)
    mixture_var = (np.exp(log_vars) + means**2).mean(axis=0) - mixture_mean**2
    np.testing.assert_allclose(samples.mean(axis=0), mixture_mean, atol=0.03)
    np.testing.assert_allclose(samples.var(axis=0), mixture_var, rtol=0.03)
    assert math.isclose(float(np.mean(samples[:, 0] < -1)), 1 / 3, abs_tol=0.01)  # component 0's share


def test_echo_runs_with_channel_health_get_its_figure(tmp_path):
    directory = tmp_path / "results"
    health = {"echo_saturated": [0.5, 0.9, 1.0], "echo_at_floor": [0.6, 1.0, 1.0], "echo_log_sx": [-0.5, -0.01, 0.0],
              "echo_fx_mean": [0.1, 0.5, 0.9], "echo_fx_spread": [0.1, 0.05, 0.01], "echo_noise_mean": [0.3, 2.0, 5.0],
              "echo_noise_spread": [0.2, 0.1, 0.05], "echo_rate_dim00": [1.0, 0.3, 0.179], "echo_rate_dim01": [2.0, 0.2, 0.179]}
    for beta in (0.5, 2.0):
        save_pickle(directory / f"echo_binary_mnist_beta{beta:g}_seed0.pickle",
                    fake_results("echo", "binary_mnist", beta, 0, 6.0, 200.0, **health))
    save_pickle(directory / "vae_binary_mnist_beta1_seed0.pickle", fake_results("vae", "binary_mnist", 1.0, 0, 20.0, 100.0))
    assert report.main([str(directory)]) == 0
    figure = imread(directory / "report" / "channel_health.png")
    # One row (binary_mnist, echo), five panels; the VAE has no channel health.
    assert figure.shape[:2] == (round(CURVE_PANEL_INCHES[1] * DPI), round(5 * CURVE_PANEL_INCHES[0] * DPI))
    assert figure[..., :3].std() > 0.05


def test_runs_without_channel_health_get_no_health_figure(results_dir):
    assert report.main([str(results_dir)]) == 0
    assert not (results_dir / "report" / "channel_health.png").exists()
