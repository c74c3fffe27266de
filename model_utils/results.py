"""Writing a run's results: the pickled history and the weights, each atomically.

The pickle is a plain dict of built-in types and NumPy arrays, loadable with nothing but
``pickle`` and ``numpy``. Files are written to a temporary name in the same directory,
flushed to disk, then renamed over the destination, so a run killed while saving leaves
either the previous file or none, never a truncated one.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def result_paths(results_dir: str | os.PathLike, filename: str) -> tuple[Path, Path]:
    """(<results_dir>/<filename>.pickle, <results_dir>/<filename>.weights.h5)."""
    directory = Path(results_dir)
    return directory / f"{filename}.pickle", directory / f"{filename}.weights.h5"


def write_atomically(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Call write(temporary_path) in path's directory, fsync, then rename onto path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_pickle(path: Path, results: dict[str, Any]) -> None:
    """Pickle `results` to `path` atomically, after checking it holds only plain types."""
    _check_plain(results, "results")
    payload = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    write_atomically(path, lambda temporary: temporary.write_bytes(payload))


_PLAIN_SCALARS = (str, int, float, bool, type(None), np.ndarray, np.generic)


def _check_plain(value: Any, where: str) -> None:
    """Refuse anything a reader would need this project's code to unpickle."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, where)
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif not isinstance(value, _PLAIN_SCALARS) or (isinstance(value, np.ndarray) and value.dtype == object):
        raise TypeError(f"{where} is a {type(value).__name__}, not a plain type a results pickle may hold")
