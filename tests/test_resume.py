"""Checkpoints and resumption: a killed run resumed by the same command ends exactly as an
uninterrupted one; damaged checkpoints fall back to the one before; a checkpoint of another
run is refused; SIGINT and SIGTERM keep the last checkpoint; the CSV and TensorBoard logs."""

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from experiment.errors import EXIT_USAGE
from experiment import signals
from experiment.checkpoints import checkpointed_epochs
from support import REPO, TINY, load_pickle, run_tiny

NEEDS_DATA = pytest.mark.skipif(not os.environ.get("ECHO_DATA_DIR"), reason="ECHO_DATA_DIR is not set")


def _same_run(a: dict, b: dict) -> None:
    """Two results of the same command: equal in every list, score and array, except the
    epochs' wall times and where they were written."""
    assert set(a) == set(b)
    for key in a:
        if key == "epoch_time":
            assert len(a[key]) == len(b[key])
        elif key == "args":
            assert {k: v for k, v in a[key].items() if k != "results_dir"} == {k: v for k, v in b[key].items() if k != "results_dir"}
        elif isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


def _weights(path) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as stream:
        stream.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


def _csv_rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


# ---- in process, on tiny data ---------------------------------------------------------------


def test_a_finished_run_leaves_no_checkpoint_unless_asked(tmp_path, tiny_data):
    assert run_tiny(tmp_path, "--epochs", "2") == 0
    assert not (tmp_path / "out.checkpoint").exists()
    assert run_tiny(tmp_path, "--epochs", "2", "--keep-checkpoint", "--overwrite") == 0
    assert checkpointed_epochs(tmp_path / "out.checkpoint") == [1, 2]


def _interrupted_copy(tmp_path, tiny_data, epochs: int, keep: int, config=None):
    """Results of an uninterrupted run in tmp_path/"whole", and in tmp_path/"cut" the
    checkpoints that the same run leaves after `keep` epochs (its later checkpoints and its
    results removed, as if it had been killed)."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_tiny(whole, "--epochs", str(epochs), "--validate", config=config) == 0
    assert run_tiny(cut, "--epochs", str(epochs), "--validate", "--keep-checkpoint", config=config) == 0
    for name in ("out.pickle", "out.weights.h5"):
        (cut / name).unlink()
    for epoch in range(keep + 1, epochs + 1):
        for suffix in ("state.pickle", "weights.h5"):
            (cut / "out.checkpoint" / f"epoch-{epoch:04d}.{suffix}").unlink(missing_ok=True)
    return whole, cut


# The reference recipe, and the project's Echo with a scheduled β, a rate target and the
# running centring of f(x), whose state (multiplier, running mean) the checkpoint carries.
CONTROLLED = copy.deepcopy(TINY)
CONTROLLED["layers"][3]["layer_kwargs"].update(sx_act="neg_square", fx_centring="running")
CONTROLLED.update(anneal_schedule=[[0, 0.5], [2, 1.0]], lagrangian_fit=1,
                  constraints=[{"loss": "rate", "relation": "eq", "value": 2.0, "lr": 0.01}])


@pytest.mark.parametrize("config", [TINY, CONTROLLED], ids=["reference recipe", "scheduled and constrained"])
def test_resuming_from_a_checkpoint_ends_as_the_uninterrupted_run(tmp_path, tiny_data, capsys, config):
    whole, cut = _interrupted_copy(tmp_path, tiny_data, epochs=3, keep=2, config=config)
    capsys.readouterr()
    assert run_tiny(cut, "--epochs", "3", "--validate", config=config) == 0
    assert "resuming out from epoch 2 of 3" in capsys.readouterr().out
    _same_run(load_pickle(whole), load_pickle(cut))
    weights = _weights(whole / "out.weights.h5")
    resumed = _weights(cut / "out.weights.h5")
    assert weights.keys() == resumed.keys()
    for name in weights:
        np.testing.assert_array_equal(weights[name], resumed[name], err_msg=name)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, tiny_data, capsys):
    whole, cut = _interrupted_copy(tmp_path, tiny_data, epochs=3, keep=3)
    newest = cut / "out.checkpoint" / "epoch-0003.state.pickle"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    capsys.readouterr()
    assert run_tiny(cut, "--epochs", "3", "--validate") == 0
    captured = capsys.readouterr()
    assert "warning: skipped a damaged checkpoint" in captured.err and "epoch-0003.state.pickle" in captured.err
    assert "resuming out from epoch 2 of 3" in captured.out
    _same_run(load_pickle(whole), load_pickle(cut))


def test_weights_that_do_not_match_their_state_are_not_used(tmp_path, tiny_data, capsys):
    whole, cut = _interrupted_copy(tmp_path, tiny_data, epochs=3, keep=3)
    (cut / "out.checkpoint" / "epoch-0003.weights.h5").write_bytes(b"not an h5 file")
    assert run_tiny(cut, "--epochs", "3", "--validate") == 0
    assert "epoch-0003.weights.h5: missing or not the file its state was written with" in capsys.readouterr().err
    _same_run(load_pickle(whole), load_pickle(cut))


def test_weights_written_without_their_state_are_ignored(tmp_path, tiny_data, capsys):
    # A kill between the two files of a checkpoint: the state file, written last, is missing.
    whole, cut = _interrupted_copy(tmp_path, tiny_data, epochs=3, keep=3)
    (cut / "out.checkpoint" / "epoch-0003.state.pickle").unlink()
    assert run_tiny(cut, "--epochs", "3", "--validate") == 0
    assert "resuming out from epoch 2 of 3" in capsys.readouterr().out
    _same_run(load_pickle(whole), load_pickle(cut))


def test_a_checkpoint_of_another_run_is_refused_and_overwrite_starts_afresh(tmp_path, tiny_data, capsys):
    _, cut = _interrupted_copy(tmp_path, tiny_data, epochs=3, keep=2)
    capsys.readouterr()
    assert run_tiny(cut, "--epochs", "3", "--validate", "--beta", "2") == EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "was written by a different run (config:" in error and "--overwrite to start afresh" in error
    assert not (cut / "out.pickle").exists() and checkpointed_epochs(cut / "out.checkpoint") == [2]
    assert run_tiny(cut, "--epochs", "3", "--validate", "--beta", "2", "--overwrite") == 0
    assert "resuming" not in capsys.readouterr().out


def test_the_csv_has_one_row_per_epoch_across_a_resume(tmp_path, tiny_data):
    whole, cut = _interrupted_copy(tmp_path, tiny_data, epochs=3, keep=2)
    # The CSV of the cut run still has the row of epoch 3: the resume must drop it.
    assert len(_csv_rows(cut / "out.csv")) == 3
    assert run_tiny(cut, "--epochs", "3", "--validate") == 0
    rows, reference = _csv_rows(cut / "out.csv"), _csv_rows(whole / "out.csv")
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    health = ["echo_at_floor", "echo_fx_mean", "echo_fx_spread", "echo_log_sx", "echo_noise_mean", "echo_noise_spread",
              *(f"echo_rate_dim{j:02d}" for j in range(4)), "echo_saturated"]
    assert list(rows[0]) == ["epoch", "loss", "rate", "distortion", "echo", "val_loss", "val_rate", "val_distortion",
                             "val_echo", *health, "lr", "epoch_time"]
    results = load_pickle(cut)
    for name in ("loss", "rate", "val_distortion", "lr", *health):
        assert [float(row[name]) for row in rows] == results[name] == [float(row[name]) for row in reference]


def test_tensorboard_gets_the_epoch_scalars(tmp_path, tiny_data):
    from tensorflow.python.summary.summary_iterator import summary_iterator

    assert run_tiny(tmp_path, "--epochs", "2", "--tensorboard", str(tmp_path / "tb")) == 0
    tags = {}
    for path in (tmp_path / "tb" / "train").glob("events.out.tfevents.*"):
        for event in summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(event.step)
    assert {"epoch_loss", "epoch_rate", "epoch_distortion", "epoch_echo", "epoch_lr"} <= set(tags)
    assert tags["epoch_loss"] == {0, 1}


# ---- killed processes, on real data ---------------------------------------------------------


def _command(results, epochs):
    config = copy.deepcopy(TINY)
    return [sys.executable, "run.py", "--config", json.dumps(config), "--dataset", "binary_mnist", "--train-size", "1000",
            "--test-size", "100", "--epochs", str(epochs), "--results-dir", str(results), "--filename", "tiny", "--verbose", "0"]


def _start_and_wait_for_checkpoint(results, epochs, checkpoint):
    process = subprocess.Popen(_command(results, epochs), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = results / "tiny.checkpoint" / f"epoch-{checkpoint:04d}.state.pickle"
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    return process


@NEEDS_DATA
def test_a_run_killed_with_sigkill_and_resumed_equals_the_uninterrupted_run(tmp_path):
    whole = subprocess.run(_command(tmp_path / "whole", 5), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]

    process = _start_and_wait_for_checkpoint(tmp_path / "cut", 5, checkpoint=2)
    process.kill()
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "cut" / "tiny.pickle").exists()
    resumed = subprocess.run(_command(tmp_path / "cut", 5), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming tiny from epoch" in resumed.stdout
    assert resumed.stderr == ""  # a clean console: no TensorFlow start-up lines

    _same_run(load_pickle(tmp_path / "whole", "tiny"), load_pickle(tmp_path / "cut", "tiny"))
    reference, weights = _weights(tmp_path / "whole" / "tiny.weights.h5"), _weights(tmp_path / "cut" / "tiny.weights.h5")
    for name in reference:
        np.testing.assert_array_equal(reference[name], weights[name], err_msg=name)
    assert [row["epoch"] for row in _csv_rows(tmp_path / "cut" / "tiny.csv")] == ["1", "2", "3", "4", "5"]


@NEEDS_DATA
@pytest.mark.parametrize("sent, status, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_sigint_and_sigterm_keep_the_last_checkpoint_and_say_how_to_resume(tmp_path, sent, status, name):
    process = _start_and_wait_for_checkpoint(tmp_path, 50, checkpoint=1)
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"error: interrupted by {name} in epoch ")
    assert "is kept in" in line and "run the same command again to resume" in line
    assert checkpointed_epochs(tmp_path / "tiny.checkpoint") and not (tmp_path / "tiny.pickle").exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one, on purpose
def test_a_signal_whose_exception_a_finalizer_swallowed_still_stops_the_run(monkeypatch):
    monkeypatch.setattr(signals, "_signals_received", [])

    class Finalized:
        def __del__(self):
            signals._interrupt(signal.SIGINT, None)  # as if SIGINT arrived while TensorFlow collected a function

    Finalized()  # Python prints "Exception ignored in ..." and goes on
    with pytest.raises(KeyboardInterrupt):
        signals.SignalCheck().on_train_batch_end(0)
