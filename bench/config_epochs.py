"""Seconds per binary-MNIST epoch of every project config, through run.py.

    python -m bench.config_epochs [--configs echo.json vae.json ...] [--train-size 5000]
                                  [--precision float32]

Each config runs as `run.py --config C --train-size N --epochs 2` in a fresh process; the
second epoch's wall time (the first includes the tracing), times 50,000 / N, is the time
of a full epoch of the 50,000 training images (batch 100, 500 steps). Prints one row per
config: milliseconds per step, seconds per full epoch, and the ratio to vae.json's.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.runs import REPO, run_in_process

FULL_EPOCH = 50_000


def epoch_seconds(config: str, args: argparse.Namespace, results: Path) -> float:
    """The second epoch's wall time of a `run.py` run of `config` on N training images."""
    argv = ["--config", config, "--train-size", str(args.train_size), "--epochs", "2", "--test-size", "100",
            "--precision", args.precision]
    return run_in_process(argv, results, Path(config).stem, args.data_dir)["epoch_time"][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", help="default: every project config, vae.json first",
                        default=sorted((p.name for p in (REPO / "configs").glob("*.json")), key=lambda n: (n != "vae.json", n)))
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    steps = args.train_size // 100
    print(f"run.py, binary MNIST, batch 100, {args.precision}: second epoch of {steps} steps, scaled to 500 steps")
    print(f"  {'config':22s} {'ms/step':>8s} {'s/epoch':>8s} {'× vae':>6s}")
    seconds = {}
    with tempfile.TemporaryDirectory() as results:
        for config in args.configs:
            seconds[config] = epoch_seconds(config, args, Path(results))
            relative = f"{seconds[config] / seconds['vae.json']:6.2f}" if "vae.json" in seconds else ""
            print(f"  {config:22s} {1000 * seconds[config] / steps:8.0f} "
                  f"{seconds[config] * FULL_EPOCH / args.train_size:8.0f} {relative}", flush=True)


if __name__ == "__main__":
    main()
