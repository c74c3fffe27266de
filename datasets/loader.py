"""``load``: a dataset by name, from local files (cached) or else TensorFlow Datasets."""

from __future__ import annotations

import os

from . import tfds_source
from .cache import cached
from .dataset import SPLITS, Dataset, Splits
from .errors import DatasetError
from .registry import DatasetSpec, spec_for
from .search import DATA_DIR_VARIABLE, Hit, search, search_roots


def load(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads dataset ``name`` (one of NAMES) as float32 (N, 28, 28, 1) images in [0, 1].

    Looks in ``data_dir``, then $ECHO_DATA_DIR, then the system locations
    (search.SYSTEM_DATA_DIRS), in each of the dataset's subdirectories; the
    first complete set of files wins and is parsed once, then cached. If no
    files are found, falls back to TensorFlow Datasets (which downloads on
    machines with internet access). Raises DatasetError with a full
    explanation when the name is unknown, a file is damaged, or the data
    cannot be found anywhere.
    """
    spec = spec_for(name)
    result = search(spec, search_roots(data_dir))
    if result.hit is not None:
        return load_files(spec, result.hit)
    return _load_tfds(spec, result.report)


def load_files(spec: DatasetSpec, hit: Hit) -> Dataset:
    """The dataset in the files of ``hit``, through the cache."""
    return cached(spec.name, hit.paths, lambda: _read_files(spec, hit))


def _read_files(spec: DatasetSpec, hit: Hit) -> Dataset:
    parsed = hit.layout.read(hit.paths)
    splits = spec.finish(parsed.splits)
    files = ", ".join(path.name for path in hit.paths)
    origin = f"{hit.layout.description} in {hit.directory} ({files})"
    return Dataset.from_splits(spec.name, _describe(origin, spec, splits, parsed.remark), splits)


def _load_tfds(spec: DatasetSpec, report: tuple[str, ...]) -> Dataset:
    try:
        provided = tfds_source.fetch(spec.tfds)
    # TFDS fails in many ways (no network, missing optional modules, download
    # errors); each means the same to the user: the data are not available.
    except Exception as exc:
        reason = str(exc) if isinstance(exc, DatasetError) else f"{type(exc).__name__}: {exc}"
        raise not_found(spec, report, f"failed: {reason}") from exc
    splits = spec.finish(provided)
    source = _describe(f"TensorFlow Datasets {spec.tfds.name!r}", spec, splits)
    return Dataset.from_splits(spec.name, source, splits)


def _describe(origin: str, spec: DatasetSpec, splits: Splits, remark: str = "") -> str:
    """'<origin>[; <spec note>]: <sizes> images[; <remark on the files' contents>]'."""
    sizes = ", ".join(f"{len(splits[split]['x'])} {split}" for split in SPLITS if split in splits)
    note = f"; {spec.note}" if spec.note else ""
    remark = f"; {remark}" if remark else ""
    return f"{origin}{note}: {sizes} images{remark}"


def not_found(spec: DatasetSpec, report: tuple[str, ...], tfds_status: str) -> DatasetError:
    """The error for a dataset found nowhere: every place searched, and how to get the data."""
    subdirs = ", ".join(f"<dir>/{subdir}" if subdir else "<dir>" for subdir in spec.subdirs)
    wanted = " or ".join(layout.wanted() for layout in spec.layouts)
    lines = [
        f"Dataset {spec.name!r} ({spec.title}) was not found.",
        f"Looked for {wanted} in {subdirs} of each data directory:",
        *(f"  - {line}" for line in report),
        f"  - TensorFlow Datasets {spec.tfds.name!r}: {tfds_status}",
        f"To get it: {spec.how_to_get}",
        f"Then pass that data directory as data_dir (CLI: --data-dir) or set {DATA_DIR_VARIABLE}. "
        "On a machine with internet access, TensorFlow Datasets downloads it instead.",
    ]
    return DatasetError("\n".join(lines))
