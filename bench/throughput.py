"""Training throughput of echo.json through run.py, in float32 and bfloat16, beside the
PyTorch peer (../shared/bench/peer_torch.py) measured in the same sitting.

    python -m bench.throughput [--rounds 3] [--train-size 10000] [--epochs 3]
                               [--precisions float32 mixed_bfloat16] [--peer-python PYTHON]

Each measurement is one `run.py --config echo.json --train-size N --epochs E` process on
binary MNIST, the path a user's run takes (data pipeline, Keras fit, the per-epoch reseed
and checkpoint included); its examples per second are N over the median epoch time after
the first. With --peer-python (a Python with torch, e.g. a separate virtual environment),
each round also runs the peer's reference conv autoencoder with Echo noise for the same
number of steps, and the ratio is taken within the round, so that the machine's drifts hit
both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.runs import REPO, run_in_process

PEER = REPO.parent / "shared" / "bench" / "peer_torch.py"


def ours(precision: str, args: argparse.Namespace, results: Path) -> float:
    """Examples per second of one run.py run of echo.json in `precision`."""
    argv = ["--config", args.config, "--train-size", str(args.train_size), "--epochs", str(args.epochs),
            "--precision", precision]
    epoch_times = run_in_process(argv, results, f"throughput_{precision}", args.data_dir)["epoch_time"]
    return args.train_size / statistics.median(epoch_times[1:])


def peer(python: str, steps: int) -> float:
    """Examples per second of the PyTorch peer with Echo noise."""
    finished = subprocess.run([python, str(PEER), "--noise", "echo", "--steps", str(steps)],
                              capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"the peer failed:\n{finished.stderr[-2000:]}")
    return float(json.loads(finished.stdout.strip().splitlines()[-1])["examples_per_sec"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="echo.json")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=10_000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not timed)")
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--peer-python", default=None, help="a Python with torch to run the peer")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    steps = args.train_size // 100 * (args.epochs - 1)
    print(f"{args.config} through run.py, {args.train_size} binary-MNIST images an epoch, "
          f"examples per second over epochs 2-{args.epochs}; peer: {steps} steps of batch 100")
    columns = list(args.precisions) + (["peer (torch)"] if args.peer_python else [])
    print("  round  " + "  ".join(f"{column:>16s}" for column in columns)
          + ("  " + "  ".join(f"{p + '/peer':>22s}" for p in args.precisions) if args.peer_python else ""))
    rows = []
    with tempfile.TemporaryDirectory() as results:
        for round_index in range(args.rounds):
            row = {precision: ours(precision, args, Path(results)) for precision in args.precisions}
            if args.peer_python:
                row["peer (torch)"] = peer(args.peer_python, steps)
            rows.append(row)
            ratios = [row[p] / row["peer (torch)"] for p in args.precisions] if args.peer_python else []
            print(f"  {round_index + 1:5d}  " + "  ".join(f"{row[column]:16.1f}" for column in columns)
                  + ("  " + "  ".join(f"{ratio:22.2f}" for ratio in ratios) if ratios else ""), flush=True)
    print("  median " + "  ".join(f"{statistics.median(r[column] for r in rows):16.1f}" for column in columns))


if __name__ == "__main__":
    main()
