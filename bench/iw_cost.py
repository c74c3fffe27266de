"""What the importance-weighted likelihood costs: the time and peak memory of the K-sample
estimate over the binary-MNIST test images on the reference conv net (vae.json).

    python -m bench.iw_cost [--k 1000] [--images 10000] [--chunk 1000] [--data-dir DIR]

The weights are the freshly initialised ones: the cost does not depend on training. Prints
the wall time, the time per image and per sample, and the process's peak resident memory
before and after (Linux ru_maxrss).
"""

from __future__ import annotations

from experiment.console import import_tensorflow_quietly

import_tensorflow_quietly()

import argparse
import resource
import time

import datasets
from model import build_model
from model_utils.config import load_config
from experiment.likelihood import importance_weighted_log_likelihood


def _peak_megabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vae.json")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=1000, help="examples × samples per pass")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    config = load_config(args.config)
    model = build_model(config)
    x = datasets.load("binary_mnist", args.data_dir).x_test[: args.images]
    before = _peak_megabytes()
    start = time.perf_counter()
    estimate = importance_weighted_log_likelihood(model, x, args.k, batch=config.batch, chunk=args.chunk)
    seconds = time.perf_counter() - start
    print(f"{args.config}: K = {args.k} importance samples for {len(x)} binary-MNIST test images, "
          f"{args.chunk} decoder passes at a time")
    print(f"  {seconds:.0f} s ({seconds / 60:.1f} min): {1000 * seconds / len(x):.0f} ms per image, "
          f"{1e6 * seconds / (len(x) * args.k):.0f} µs per sample")
    print(f"  peak resident memory {before:.0f} MB before, {_peak_megabytes():.0f} MB after")
    print(f"  (untrained weights: NLL estimate {-estimate.mean():.1f} nats, only to show it ran)")


if __name__ == "__main__":
    main()
