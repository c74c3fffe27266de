"""How much Echo noise costs: a training step of the reference conv autoencoder with Echo
noise against the same network with Gaussian noise, measured side by side in one process,
and `echo_sample` alone as the batch grows.

    python -m bench.echo_overhead [--steps 5] [--rounds 15]

Prints per-step medians and the Echo/Gaussian ratio, the forward and backward pass of
each noise alone (the part of the step that differs), then the time of one `echo_sample`
call for B in {100, 1000, 2000, 4000, 8000} (d_max = 100, 32 latent dimensions) and its time per
example, which stays flat when the cost grows linearly in B.
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import tensorflow as tf

import echo_noise
from bench.timing import seconds_per_call
from model import build_model
from model_utils.config import load_config


def _timed_training_step(config_name: str, steps: int, x: tf.Tensor) -> Callable[[], float]:
    """A function that runs `steps` training steps of the config's model and returns the
    mean seconds per step."""
    model = build_model(load_config(config_name))
    step = tf.function(model.train_step)
    return seconds_per_call(lambda: step(x), steps)


def compare_training_steps(rounds: int, steps: int) -> None:
    x = tf.constant((np.random.default_rng(0).uniform(size=(100, 28, 28, 1)) < 0.2).astype("float32"))
    echo, gaussian = (_timed_training_step(name, steps, x) for name in ("echo.json", "vae.json"))
    echo_times, gaussian_times = [], []
    for _ in range(rounds):  # alternate, so that drifts of the machine hit both alike
        echo_times.append(echo())
        gaussian_times.append(gaussian())
    ratios = sorted(e / g for e, g in zip(echo_times, gaussian_times))
    print(f"training step, batch 100, reference conv autoencoder ({rounds} paired rounds of {steps} steps):")
    print(f"  Echo noise      {1000 * statistics.median(echo_times):8.1f} ms/step (median)")
    print(f"  Gaussian noise  {1000 * statistics.median(gaussian_times):8.1f} ms/step (median)")
    print(f"  Echo / Gaussian {statistics.median(ratios):8.3f} (median of paired rounds; range {ratios[0]:.3f}-{ratios[-1]:.3f})")


def compare_noise_layers(batch: int = 100, dims: int = 32, calls: int = 50, rounds: int = 9) -> None:
    """Forward and backward pass of the noise alone, the part of a step that differs; on a
    busy machine this isolates Echo's cost better than whole steps do. Median of `rounds`
    alternating rounds of `calls` calls each."""
    rng = np.random.default_rng(0)
    fx = tf.Variable(np.tanh(rng.normal(size=(batch, dims))).astype("float32"))
    log_sx = tf.Variable(np.log(rng.uniform(0.1, 1.0, size=(batch, dims))).astype("float32"))
    samplers = {
        "Echo noise": lambda: echo_noise.echo_sample([fx, log_sx], batch=batch),
        "Gaussian noise": lambda: fx + tf.exp(log_sx) * tf.random.normal(tf.shape(fx)),
    }
    steps = {}
    for name, sample in samplers.items():

        @tf.function
        def forward_backward(sample=sample):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(sample()))
            return tape.gradient(loss, [fx, log_sx])

        forward_backward()
        steps[name] = forward_backward
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, forward_backward in steps.items():
            start = time.perf_counter()
            for _ in range(calls):
                gradients = forward_backward()
            gradients[0].numpy()
            times[name].append((time.perf_counter() - start) / calls)
    print(f"noise alone, forward + backward (B={batch}, {dims} latent dimensions, median of {rounds} rounds):")
    for name, seconds in times.items():
        print(f"  {name:15s} {1000 * statistics.median(seconds):8.2f} ms")


def time_echo_sample(batch_sizes: tuple[int, ...], d_max: int = 100, dims: int = 32, calls: int = 20) -> None:
    print(f"echo_sample alone (d_max={d_max}, {dims} latent dimensions, forward pass):")
    for batch in batch_sizes:
        rng = np.random.default_rng(batch)
        fx = tf.constant(np.tanh(rng.normal(size=(batch, dims))).astype("float32"))
        log_sx = tf.constant(np.log(rng.uniform(0.1, 1.0, size=(batch, dims))).astype("float32"))
        sample = tf.function(lambda f, s: echo_noise.echo_sample([f, s], d_max=d_max, batch=batch))
        sample(fx, log_sx).numpy()
        start = time.perf_counter()
        for _ in range(calls):
            z = sample(fx, log_sx)
        z.numpy()
        seconds = (time.perf_counter() - start) / calls
        print(f"  B={batch:5d}: {1000 * seconds:8.2f} ms/call, {1e6 * seconds / batch:6.2f} µs/example")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="training steps per timing round")
    parser.add_argument("--rounds", type=int, default=15, help="alternating timing rounds per model")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, devices: {[d.device_type for d in tf.config.list_physical_devices()]}")
    compare_training_steps(args.rounds, args.steps)
    compare_noise_layers()
    time_echo_sample((100, 1000, 2000, 4000, 8000))


if __name__ == "__main__":
    main()
