"""Shared helpers of the test suite: where the fixtures live, and tiny data."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT_CONFIGS = sorted((REPO / "configs").glob("*.json"))
SHARED = Path(os.environ.get("ECHO_SHARED_DIR", REPO.parent / "shared"))
REFERENCE_CONFIG_DIR = SHARED / "reference" / "configs"
REFERENCE_CONFIGS = sorted(REFERENCE_CONFIG_DIR.glob("*.json"))


BATCH = 20


def _conv(index, encoder, kind, kernel, strides, padding, activation="relu"):
    return {
        "layer": index, "encoder": encoder, "type": kind, "activation": activation,
        "layer_kwargs": {"kernel_size": kernel, "strides": strides, "padding": padding},
    }


# A tiny Echo autoencoder (3,889 parameters) in the config schema: 28x28 -> 4 latents -> 28x28.
TINY = {
    "epochs": 2,
    "batch": BATCH,
    "lr": 0.003,
    "input_shape": [28, 28, 1],
    "latent_dims": [4, 4, 8, 4],
    "decoder_dims": [8, 4, 4, 1],
    "layers": [
        _conv(0, True, "Conv2D", 3, 2, "same"),
        _conv(1, True, "Conv2D", 3, 2, "same"),
        _conv(2, True, "Conv2D", 7, 1, "valid"),
        {"layer": 3, "encoder": True, "type": "echo", "layer_kwargs": {"d_max": BATCH}},
        _conv(0, False, "Conv2DTranspose", 7, 1, "valid"),
        _conv(1, False, "Conv2DTranspose", 3, 2, "same"),
        _conv(2, False, "Conv2DTranspose", 3, 2, "same"),
        _conv(3, False, "Conv2D", 3, 1, "same", "sigmoid"),
    ],
    "recon": "bce",
    "losses": [{"type": "echo", "weight": 1.0}],
}


def reference_config_params() -> list:
    """The reference configs as pytest parameters. Without ../shared they are skipped,
    with the reason shown, unless ECHO_DATA_DIR is set (as in CI): then their absence
    fails the test instead of hiding it."""
    if REFERENCE_CONFIGS:
        return [pytest.param(path, id=f"reference/{path.name}") for path in REFERENCE_CONFIGS]
    if os.environ.get("ECHO_DATA_DIR"):
        return [pytest.param(REFERENCE_CONFIG_DIR, id="reference-configs-missing")]
    return [pytest.param(None, marks=pytest.mark.skip(reason=f"no reference configs in {REFERENCE_CONFIG_DIR}"))]


def require_reference_configs() -> None:
    """Skip, with the reason shown, when ../shared is missing, unless ECHO_DATA_DIR is set
    (as in CI): then their absence fails the test instead of hiding it."""
    if REFERENCE_CONFIGS:
        return
    if os.environ.get("ECHO_DATA_DIR"):
        pytest.fail(f"no reference configs in {REFERENCE_CONFIG_DIR}")
    pytest.skip(f"no reference configs in {REFERENCE_CONFIG_DIR}")


def require_file(path: Path) -> Path:
    if path is None or not path.is_file():
        pytest.fail(f"fixture missing: {path}")
    return path


def tiny_images(n: int, seed: int = 0, ink: float = 0.2) -> np.ndarray:
    """n random binary 28x28 images, float32 (n, 28, 28, 1)."""
    return (np.random.default_rng(seed).uniform(size=(n, 28, 28, 1)) < ink).astype("float32")


def fake_results(config: str, dataset: str, beta: float, seed: int, rate: float, distortion: float,
                 epochs: int = 3, train_size: int = 1000, test_size: int = 500, **extra) -> dict:
    """A results dict shaped like run.py's, with the scores given: the project config
    `config` (e.g. "echo") with its beta and epochs set, and per-epoch histories that end
    at the given rate and distortion (nats)."""
    import json

    raw = json.loads((REPO / "configs" / f"{config}.json").read_text())
    raw.update(beta=beta, epochs=epochs)
    history = {name: [value * (1 + 0.5 * (epochs - 1 - e)) for e in range(epochs)]
               for name, value in (("rate", rate), ("distortion", distortion))}
    history["loss"] = [d + beta * r for r, d in zip(history["rate"], history["distortion"])]
    return {
        **history,
        "lr": [3e-4] * epochs,
        "epoch_time": [1.5] * epochs,
        "test_rate": rate,
        "test_distortion": distortion,
        "test_elbo": -(rate + distortion),
        "test_loss": distortion + beta * rate,
        "config": raw,
        "config_source": str(REPO / "configs" / f"{config}.json"),
        "dataset": {"name": dataset, "source": "hand-made", "train_size": train_size, "val_size": None,
                    "test_size": test_size},
        "seed": seed,
        "units": "nats per example",
        **extra,
    }


def run_tiny(directory, *extra: str, config: dict | None = None, name: str = "out") -> int:
    """`run.py` in this process on the `tiny_data` fixture's dataset: the TINY config (or
    `config`), results `<directory>/<name>.pickle`, silent; its exit status."""
    import run  # on first use: importing it starts TensorFlow

    argv = ["--config", json.dumps(config or TINY), "--dataset", "tiny", "--results-dir", str(directory),
            "--filename", name, "--verbose", "0", *extra]
    return run.main(argv)


def load_pickle(directory, name: str = "out") -> dict:
    """The results dict `<directory>/<name>.pickle`, read with plain pickle."""
    with open(Path(directory) / f"{name}.pickle", "rb") as stream:
        return pickle.load(stream)
