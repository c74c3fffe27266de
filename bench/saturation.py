"""Epoch times of Echo runs through the saturation of its scale head, with and without
subnormal floats flushed to zero in the calling thread (`experiment.floating_point`).

    python -m bench.saturation [--runs 5] [--epochs 4] [--train-size 5000]

In the first epochs of echo.json the rate falls to its floor −d·log(clip) = 5.74 nats:
s(x) = sigmoid(a) saturates at 1, and log s(x) and its gradient pass through float32's
subnormal range (a ≈ 87–103). Each run is `run.py --config echo.json --train-size N
--epochs E --seed k` in a fresh process, alternately as the entry points run it (flushed)
and with the flush left out (TensorFlow's default, subnormals kept on the calling
thread), so that drifts of the machine hit both alike. Prints every run's epoch times and
rates, the medians per epoch, and what subnormal arithmetic costs on this CPU (NumPy on a
thread without flush-to-zero), which says whether there is anything to gain.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.runs import run_in_process

MODES = ("flushed", "kept")


def _child(mode: str, argv: list[str]) -> int:
    """Train and evaluate the run of `argv` (run.py's flags) in this process; with mode
    "kept", without the flush."""
    import experiment.console

    if mode == "kept":
        experiment.console.flush_subnormals_to_zero = lambda: False
    experiment.console.import_tensorflow_quietly()
    from experiment.options import parse_run_options
    from experiment.train import train_and_evaluate

    options = parse_run_options(argv)
    train_and_evaluate(options.config, options)
    return 0


def _one_run(mode: str, seed: int, args: argparse.Namespace, results: Path) -> dict:
    argv = ["--config", "echo.json", "--train-size", str(args.train_size), "--epochs", str(args.epochs),
            "--seed", str(seed)]
    outcome = run_in_process(argv, results, f"{mode}_seed{seed}", args.data_dir,
                             entry=("-m", "bench.saturation", "--child", mode, "--"))
    return {"mode": mode, "seed": seed, "epoch_time": outcome["epoch_time"], "rate": outcome["rate"]}


def subnormal_cost(size: int = 1 << 22, repeats: int = 20) -> dict[str, float]:
    """Seconds per element of x·0.5 and exp(x) on this thread for normal and subnormal x."""
    costs = {}
    for name, value, exponent in (("normal", 1e-30, -60.0), ("subnormal", 1e-40, -95.0)):
        x, half, e = np.full(size, value, np.float32), np.float32(0.5), np.full(size, exponent, np.float32)
        x * half, np.exp(e)  # warm up
        start = time.perf_counter()
        for _ in range(repeats):
            x * half
        costs[f"{name} multiply"] = (time.perf_counter() - start) / (repeats * size)
        start = time.perf_counter()
        for _ in range(repeats):
            np.exp(e)  # exp(-95) is subnormal
        costs[f"{name} exp"] = (time.perf_counter() - start) / (repeats * size)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="seeds 0 … runs-1, each run flushed and kept")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        sys.exit(_child(args.child, [a for a in rest if a != "--"]))

    print("subnormal arithmetic on this CPU (NumPy, calling thread, no flush-to-zero), ns per element:")
    costs = subnormal_cost()
    for operation in ("multiply", "exp"):
        normal, subnormal = costs[f"normal {operation}"], costs[f"subnormal {operation}"]
        print(f"  {operation:8s} normal {1e9 * normal:6.3f}  subnormal {1e9 * subnormal:6.3f}  ratio {subnormal / normal:5.2f}")
    runs = []
    with tempfile.TemporaryDirectory() as results:
        for seed in range(args.runs):
            for mode in MODES:
                run = _one_run(mode, seed, args, Path(results))
                runs.append(run)
                times = ", ".join(f"{t:5.1f}" for t in run["epoch_time"])
                rates = ", ".join(f"{r:6.3f}" for r in run["rate"])
                print(f"{mode:8s} seed {seed}: epoch seconds [{times}]  rate [{rates}] nats", flush=True)
    print(f"median epoch seconds over {args.runs} runs (echo.json, {args.train_size} training images):")
    for mode in MODES:
        per_epoch = zip(*(r["epoch_time"] for r in runs if r["mode"] == mode))
        print(f"  {mode:8s} " + ", ".join(f"{statistics.median(times):5.1f}" for times in per_epoch)
              + f"   (slowest epoch {max(max(r['epoch_time']) for r in runs if r['mode'] == mode):.1f} s)")


if __name__ == "__main__":
    main()
