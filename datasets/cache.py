"""On-disk cache of parsed datasets, so that loading them again takes a fraction of a second.

A cache file holds one Dataset and the key it was built from: the format
version, the dataset name and the absolute path, size and modification time
of every source file. It is trusted only if that key matches the current
files exactly; a file that cannot be read (truncated, corrupt, foreign) is
ignored and rebuilt. Files are written atomically, so an interrupted write
leaves at worst a stray temporary file that is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .dataset import Dataset
from .errors import DatasetError
from .images import from_uint8, to_uint8_exact

CACHE_DIR_VARIABLE = "ECHO_CACHE_DIR"
# Bumped whenever what is cached for the same source files changes (2: Omniglot's test
# split lost the drawings that are also in its training split).
FORMAT_VERSION = 2

# Images that are exact multiples of 1/255 are stored as bytes, four times smaller.
_UINT8 = "uint8/255"
_RAW = "raw"


def cache_dir() -> Path:
    """$ECHO_CACHE_DIR, else $XDG_CACHE_HOME/echo, else ~/.cache/echo."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "echo"


def cached(name: str, sources: Sequence[Path], build: Callable[[], Dataset]) -> Dataset:
    """The Dataset built from ``sources``: cached if current, else ``build()``, which is then cached."""
    key = _source_key(name, sources)
    path = cache_dir() / f"{name}-{_digest(key['files'])}.npz"
    dataset = _read(path, key)
    if dataset is None:
        dataset = build()
        _write(path, key, dataset)
    return dataset


def _source_key(name: str, sources: Sequence[Path]) -> dict:
    files = []
    for source in sources:
        try:
            stat = source.stat()
        except OSError as exc:
            raise DatasetError(f"Cannot read {source}: {exc.strerror or exc}.") from exc
        files.append([str(source.resolve()), stat.st_size, stat.st_mtime_ns])
    return {"format": FORMAT_VERSION, "dataset": name, "files": files}


def _digest(files: list) -> str:
    # Named after the source paths only, so a changed file overwrites its stale entry.
    paths = json.dumps([path for path, _, _ in files])
    return hashlib.sha256(paths.encode()).hexdigest()[:16]


def _read(path: Path, key: dict) -> Dataset | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].item())
            if meta["key"] != key:
                return None
            splits: dict[str, dict[str, np.ndarray]] = {}
            for split, field, encoding in meta["arrays"]:
                array = archive[f"{split}.{field}"]
                splits.setdefault(split, {})[field] = from_uint8(array) if encoding == _UINT8 else array
            return Dataset.from_splits(key["dataset"], meta["source"], splits)
    # Whatever is wrong with a cache file (truncated, corrupt, written by other
    # code), the remedy is the same: rebuild it from the source files.
    except Exception as exc:
        warnings.warn(f"Ignoring unreadable dataset cache {path} ({exc}); rebuilding it.", stacklevel=3)
        return None


def _write(path: Path, key: dict, dataset: Dataset) -> None:
    arrays, layout = {}, []
    for split, fields in dataset.splits().items():
        for field, array in fields.items():
            pixels = to_uint8_exact(array) if field == "x" else None
            arrays[f"{split}.{field}"] = array if pixels is None else pixels
            layout.append([split, field, _RAW if pixels is None else _UINT8])
    meta = {"key": key, "source": dataset.source, "arrays": layout}
    arrays["meta"] = np.array(json.dumps(meta))
    try:
        _write_atomically(path, arrays)
    except OSError as exc:
        warnings.warn(
            f"Could not write the dataset cache {path} ({exc}); loading works but stays slow. "
            f"Set {CACHE_DIR_VARIABLE} to a writable directory.",
            stacklevel=3,
        )


def _write_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
