"""Training throughput of run.py on one device and data-parallel on N (`--devices N`).

    python -m bench.devices [--devices 2] [--rounds 3] [--train-size 6000] [--epochs 3]

Each measurement is one `run.py --config echo.json --train-size N --epochs E` process on
binary MNIST, alternately on one device and on `--devices` replicas (logical CPU devices
on a machine without GPUs), so that drifts of the machine hit both alike; examples per
second are N over the median epoch time after the first. On a CPU the replicas share its
cores, so this shows that the path works and what it costs, not a speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.runs import run_in_process


def examples_per_second(devices: int, args: argparse.Namespace, results: Path) -> float:
    argv = ["--config", args.config, "--train-size", str(args.train_size), "--epochs", str(args.epochs)]
    if devices > 1:
        argv += ["--devices", str(devices)]
    epoch_times = run_in_process(argv, results, f"devices_{devices}", args.data_dir)["epoch_time"]
    return args.train_size / statistics.median(epoch_times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="echo.json")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=6000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not timed)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    print(f"{args.config} through run.py, {args.train_size} binary-MNIST images an epoch, examples per second "
          f"over epochs 2-{args.epochs}: one device against {args.devices} data-parallel replicas")
    ratios = []
    with tempfile.TemporaryDirectory() as results:
        for round_ in range(1, args.rounds + 1):
            one = examples_per_second(1, args, Path(results))
            several = examples_per_second(args.devices, args, Path(results))
            ratios.append(several / one)
            print(f"round {round_}: 1 device {one:.0f} ex/s, {args.devices} devices {several:.0f} ex/s, "
                  f"ratio {several / one:.2f}", flush=True)
    print(f"median ratio {args.devices} devices / 1 device: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
