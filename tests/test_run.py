"""The experiment runner (`run.py`) end to end, on a tiny model and tiny data, plus one
short run of a real config on real data when ECHO_DATA_DIR is set."""

import copy
import json
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from experiment.errors import EXIT_DATA, EXIT_USAGE
from model import RateDistortionModel, build_model
from model_utils.config import parse_config
from model_utils.losses import LOSS_TYPES
from experiment.results import write_atomically
from support import BATCH, REPO, TINY, load_pickle, run_tiny


# ---- results ----------------------------------------------------------------------------

HISTORY_KEYS = {"loss", "rate", "distortion", "echo", "lr", "epoch_time"}
TEST_KEYS = {"test_loss", "test_rate", "test_distortion", "test_elbo", "test_echo"}
OTHER_KEYS = {"z_mean", "z_log_scale", "z", "config", "channel", "args", "dataset", "seed", "versions", "units"}


def test_a_run_saves_a_plain_pickle_that_loads_without_the_project(tmp_path, tiny_data):
    assert run_tiny(tmp_path, "--validate", "--seed", "3") == 0
    assert (tmp_path / "out.weights.h5").is_file()
    reader = (
        "import pickle, sys, json\n"
        f"results = pickle.load(open({str(tmp_path / 'out.pickle')!r}, 'rb'))\n"
        "imported = sorted(m.split('.')[0] for m in sys.modules)\n"
        "print(json.dumps({'keys': sorted(results), 'modules': imported}))\n"
    )
    # -I: isolated mode, neither the project nor the current directory is importable.
    loaded = subprocess.run([sys.executable, "-I", "-c", reader], cwd=tmp_path, capture_output=True, text=True, check=True)
    report = json.loads(loaded.stdout)
    expected = HISTORY_KEYS | TEST_KEYS | OTHER_KEYS | {f"val_{k}" for k in ("loss", "rate", "distortion", "echo")}
    assert expected <= set(report["keys"])
    assert not {"tensorflow", "keras", "model_utils", "model", "run", "datasets", "experiment", "analysis"} & set(report["modules"])


def test_the_history_and_test_scores_are_consistent_in_nats(tmp_path, tiny_data):
    assert run_tiny(tmp_path, "--validate") == 0
    results = load_pickle(tmp_path)
    assert len(results["loss"]) == len(results["val_loss"]) == len(results["lr"]) == 2
    assert results["lr"] == [0.003, 0.003] and all(t > 0 for t in results["epoch_time"])
    assert results["units"] == "nats per example"
    assert results["dataset"] == {"name": "tiny", "source": "synthetic test images", "train_size": 100,
                                  "val_size": 40, "test_size": 50}
    # One row of encoder statistics per test example, though 50 is not a multiple of the batch.
    assert results["z_mean"].shape == results["z_log_scale"].shape == results["z"].shape == (50, 4)
    # Echo's test rate is the mean over the 50 test examples of -Σ_j (log clip + log s_j(x));
    # log s(x) is deterministic, so the saved statistics reproduce it exactly.
    clip = results["channel"]["clip"]
    expected_rate = -(math.log(clip) + results["z_log_scale"].astype(np.float64)).sum(axis=1).mean()
    assert results["test_rate"] == pytest.approx(expected_rate, rel=1e-5)
    assert results["test_elbo"] == pytest.approx(-(results["test_rate"] + results["test_distortion"]))
    assert results["test_loss"] == pytest.approx(results["test_distortion"] + results["test_echo"], rel=1e-5)


def test_the_saved_config_and_weights_rebuild_the_trained_model(tmp_path, tiny_data):
    assert run_tiny(tmp_path, "--noise", "multiplicative", "--epochs", "1") == 0
    results = load_pickle(tmp_path)
    model = build_model(parse_config(results["config"], "results"))
    model.load_weights(tmp_path / "out.weights.h5")
    assert model.channel.multiplicative and model.channel.clip == results["channel"]["clip"]
    # log s(x) does not depend on the noise, so the rebuilt encoder reproduces the saved one.
    log_scale = model.encode(tiny_data.x_test[:BATCH])["z_log_scale"].numpy()
    # Eager here, a tf.function in run.py: float32 convolutions with other kernels, a few
    # ulps of relative error, and atol for values near zero.
    np.testing.assert_allclose(log_scale, results["z_log_scale"][:BATCH], rtol=1e-5, atol=1e-6)


def test_the_same_seed_gives_the_same_history_and_another_seed_does_not(tmp_path, tiny_data):
    histories = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert run_tiny(tmp_path, "--seed", seed, "--filename", name) == 0
        results = load_pickle(tmp_path, name)
        histories.append((results["loss"], results["rate"], results["test_loss"]))
    assert histories[0] == histories[1]
    assert histories[0] != histories[2]


def test_all_epochs_of_a_run_share_one_traced_training_step(tmp_path, tiny_data, monkeypatch):
    traced = []
    original = RateDistortionModel.train_step
    monkeypatch.setattr(RateDistortionModel, "train_step", lambda self, data: traced.append(1) or original(self, data))
    counts = []
    for epochs in ("1", "3"):
        traced.clear()
        assert run_tiny(tmp_path, "--epochs", epochs, "--overwrite") == 0
        counts.append(len(traced))
    assert counts[0] >= 1 and counts[1] == counts[0]


def test_beta_from_the_command_line_is_recorded_in_the_config(tmp_path, tiny_data):
    assert run_tiny(tmp_path, "--beta", "0.5") == 0
    config = load_pickle(tmp_path)["config"]
    assert config["beta"] == 0.5 and config["losses"][0]["weight"] == 0.5


def test_an_existing_result_is_never_overwritten_unless_asked(tmp_path, tiny_data, capsys):
    assert run_tiny(tmp_path, "--epochs", "1") == 0
    before = (tmp_path / "out.pickle").read_bytes()
    assert run_tiny(tmp_path, "--epochs", "1", "--seed", "9") == EXIT_USAGE
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "out.pickle").read_bytes() == before
    assert run_tiny(tmp_path, "--epochs", "1", "--seed", "9", "--overwrite") == 0
    assert (tmp_path / "out.pickle").read_bytes() != before


# ---- bad input: one message, non-zero exit, nothing written --------------------------------


def _broken(edit):
    config = copy.deepcopy(TINY)
    edit(config)
    return config


INVALID = {
    "unknown layer type": (_broken(lambda c: c["layers"][0].update(type="Conv9D")), "layers[0].type"),
    "unknown loss type": (_broken(lambda c: c["losses"][0].update(type="elbo")), "losses[0].type"),
    "loss without its layer": (_broken(lambda c: c["losses"].append({"type": "iaf"})), "losses[1].type"),
    "missing key": (_broken(lambda c: c.pop("latent_dims")), "latent_dims: is missing"),
    "negative beta": (_broken(lambda c: c.update(beta=-2)), "beta"),
    "d_max above the batch": (_broken(lambda c: c["layers"][3]["layer_kwargs"].update(d_max=BATCH + 1)), "d_max"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_an_invalid_config_exits_with_one_message_and_writes_nothing(case, tmp_path, tiny_data, capsys):
    config, fragment = INVALID[case]
    assert run_tiny(tmp_path, config=config) == EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: config inline JSON config") and fragment in error
    assert len(error.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("beta", ["nan", "-1", "inf"])
def test_an_invalid_beta_on_the_command_line_is_a_usage_error(beta, tmp_path, tiny_data, capsys):
    with pytest.raises(SystemExit) as caught:
        run_tiny(tmp_path, "--beta", beta)
    assert caught.value.code == 2 and "--beta" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_impossible_options_are_refused(tmp_path, tiny_data, capsys):
    vae = _broken(lambda c: (c["layers"][3].update(type="vae", layer_kwargs={}), c.update(losses=[{"type": "vae"}])))
    assert run_tiny(tmp_path, "--noise", "multiplicative", config=vae) == EXIT_USAGE
    assert "--noise" in capsys.readouterr().err
    assert run_tiny(tmp_path, "--per_label", "3") == EXIT_DATA  # the tiny data have no labels
    assert "labels" in capsys.readouterr().err
    assert run_tiny(tmp_path, "--train-size", str(BATCH - 1)) == EXIT_USAGE
    assert "fewer than one batch" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_diverging_run_writes_nothing(tmp_path, tiny_data, monkeypatch, capsys):
    def rate_that_diverges(outputs, model):
        return model.channel.rate(outputs) / 0.0

    monkeypatch.setitem(LOSS_TYPES, "echo", replace(LOSS_TYPES["echo"], compute=rate_that_diverges))
    assert run_tiny(tmp_path) == EXIT_DATA
    assert "diverged" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_the_previous_file_and_no_debris(tmp_path):
    target = tmp_path / "results.pickle"
    target.write_bytes(b"previous run")

    def write_half_then_die(temporary):
        temporary.write_bytes(b"half a pick")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, write_half_then_die)
    assert target.read_bytes() == b"previous run"
    assert [path.name for path in tmp_path.iterdir()] == ["results.pickle"]


# ---- the real thing ---------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("ECHO_DATA_DIR"), reason="ECHO_DATA_DIR is not set")
def test_a_short_run_of_echo_on_real_binary_mnist(tmp_path):
    command = [
        sys.executable, "run.py", "--config", "echo.json", "--beta", "1.0", "--filename", "smoke",
        "--dataset", "binary_mnist", "--epochs", "2", "--train-size", "600", "--test-size", "250",
        "--results-dir", str(tmp_path), "--verbose", "0",
    ]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "nats per example" in finished.stdout
    results = load_pickle(tmp_path, "smoke")
    assert all(math.isfinite(value) for value in results["loss"] + [results["test_loss"]])
    assert results["loss"][1] < results["loss"][0]
    assert results["dataset"]["train_size"] == 600 and results["z"].shape == (250, 32)
