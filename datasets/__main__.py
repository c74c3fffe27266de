"""Command line: ``python -m datasets info`` and ``python -m datasets show NAME --out grid.png``.

Errors are one line on stderr; the exit code is 2 for bad usage and 1 for a
data problem.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from .dataset import SPLITS
from .errors import DatasetError
from .images import tile_grid
from .loader import load, load_files
from .registry import NAMES, REGISTRY
from .search import search, search_roots

USAGE_ERROR = 2
DATA_ERROR = 1


class _UsageError(Exception):
    """Bad command-line usage; its message is shown on one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line with ``argv`` (default sys.argv[1:]); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except _UsageError as exc:
        return _fail(f"usage error: {exc} (see python -m datasets --help)", USAGE_ERROR)
    except DatasetError as exc:
        return _fail(str(exc), DATA_ERROR)


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m datasets", description="Inspect the datasets of the echo experiments."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="say which datasets are available locally, from where")
    info.add_argument("--data-dir", help="data directory to search first")
    info.set_defaults(run=_info)
    show = commands.add_parser("show", help="write a grid of example images as PNG")
    show.add_argument("name", choices=NAMES, metavar="NAME", help=f"one of {', '.join(NAMES)}")
    show.add_argument("--out", required=True, type=Path, help="PNG file to write")
    show.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    show.add_argument("--split", choices=SPLITS, default="train", help="split (default train)")
    show.add_argument("--data-dir", help="data directory to search first")
    show.set_defaults(run=_show)
    return parser


def _info(args: argparse.Namespace) -> int:
    """Prints each dataset's availability without ever downloading; 1 if a local file is damaged."""
    roots = search_roots(args.data_dir)
    status = 0
    for name, spec in REGISTRY.items():
        hit = search(spec, roots).hit
        if hit is None:
            print(f"{name}: not found locally (would try TensorFlow Datasets {spec.tfds.name!r})")
            continue
        try:
            dataset = load_files(spec, hit)
        except DatasetError as exc:
            print(f"{name}: found in {hit.directory} but unusable: {_one_line(str(exc))}")
            status = DATA_ERROR
            continue
        sizes = ", ".join(f"{split} {size}" for split, size in dataset.sizes.items())
        print(f"{name}: available ({sizes}) from {dataset.source}")
    return status


def _show(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise _UsageError(f"--n must be at least 1, got {args.n}")
    dataset = load(args.name, args.data_dir)
    if args.split not in dataset.sizes:
        raise _UsageError(f"{dataset.name} has no {args.split!r} split, only {', '.join(dataset.sizes)}")
    x, _ = dataset.split(args.split)
    if args.n > len(x):
        raise _UsageError(f"--n {args.n} exceeds the {len(x)} images of split {args.split!r}")
    # Pillow (matplotlib's image library) writes the grayscale PNG.
    from PIL import Image

    grid = tile_grid(x[: args.n])
    try:
        Image.fromarray(grid[..., 0]).save(args.out, format="PNG")
    except OSError as exc:
        raise DatasetError(f"Cannot write {args.out}: {exc.strerror or exc}.") from exc
    print(f"wrote {args.n} {args.name} {args.split} images to {args.out}")
    return 0


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _fail(message: str, code: int) -> int:
    print(f"error: {_one_line(message)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    # TensorFlow's and TFDS's start-up logging would break the promise of
    # one-line errors on stderr; a library must not change this, a CLI may.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("absl").setLevel(logging.ERROR)
    sys.exit(main())
