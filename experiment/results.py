"""A run's results files: writing the pickled history and the weights, each atomically,
and reading a results pickle back.

The pickle is a plain dict of built-in types and NumPy arrays, loadable with nothing but
``pickle`` and ``numpy``. Files are written to a temporary name in the same directory,
flushed to disk, then renamed over the destination, so a run killed while saving leaves
either the previous file or none, never a truncated one. `load_results` reads one back
without running any code the file names (only NumPy's array and scalar constructors are
allowed), and checks that it is a results dict.
"""

from __future__ import annotations

import io
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


class ResultsError(ValueError):
    """A file that is not a readable results pickle; the message names the file."""


# What NumPy arrays, dtypes and scalars need to unpickle (numpy.core before NumPy 2).
_NUMPY_CONSTRUCTORS = {
    (module, name)
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
    for name in ("dtype", "ndarray", "scalar", "_reconstruct", "_frombuffer")
}
# The keys `run.py` always writes and a report relies on.
REQUIRED_KEYS = ("config", "test_rate", "test_distortion", "test_elbo", "loss", "rate", "distortion")


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_CONSTRUCTORS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a results pickle never holds")
        return super().find_class(module, name)


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """The results dict `run.py` saved at `path`; ResultsError if the file cannot be read,
    is truncated or corrupt, holds anything but plain types, or lacks a results key."""
    path = Path(path)
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise ResultsError(f"{path}: cannot be read: {error.strerror or error}") from None
    try:
        results = _PlainUnpickler(io.BytesIO(payload)).load()
    except Exception as error:  # a corrupt pickle can raise almost anything
        raise ResultsError(f"{path}: not a readable results pickle ({type(error).__name__}: {error})") from None
    if not isinstance(results, dict):
        raise ResultsError(f"{path}: not a results file (a pickled {type(results).__name__}, not a dict)")
    missing = [key for key in REQUIRED_KEYS if key not in results]
    if missing:
        raise ResultsError(f"{path}: not a results file (no {', '.join(missing)})")
    return results
