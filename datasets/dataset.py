"""The in-memory form of a loaded dataset."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np

from .errors import DatasetError

SPLITS = ("train", "val", "test")
IMAGE_SHAPE = (28, 28, 1)

# What a split may hold: images, class labels and (Omniglot) alphabet labels,
# as {split: {key: array}}.
SPLIT_KEYS = ("x", "y", "alphabet")
Splits = Mapping[str, Mapping[str, np.ndarray]]


@dataclass(frozen=True, eq=False, kw_only=True)
class Dataset:
    """Train/validation/test images of one dataset.

    Images ``x_*`` are float32 arrays of shape (N, 28, 28, 1) with values in
    [0, 1], ink = 1 and background = 0. Labels ``y_*`` are int64 arrays of
    shape (N,) where the source has labels, else None. ``alphabet_*`` holds
    Omniglot's alphabet index per image (None elsewhere). ``x_val`` is None for
    datasets without a validation split (Omniglot). ``source`` says which files
    or service the data came from.
    """

    name: str
    x_train: np.ndarray
    x_val: np.ndarray | None = None
    x_test: np.ndarray
    y_train: np.ndarray | None = None
    y_val: np.ndarray | None = None
    y_test: np.ndarray | None = None
    alphabet_train: np.ndarray | None = None
    alphabet_val: np.ndarray | None = None
    alphabet_test: np.ndarray | None = None
    source: str

    def __post_init__(self) -> None:
        for split in SPLITS:
            _check_split(self.name, split, self._arrays(split))

    @classmethod
    def from_splits(cls, name: str, source: str, splits: Splits) -> Dataset:
        """Builds a Dataset from ``{split: {"x": ..., "y": ..., "alphabet": ...}}``."""
        known = {f.name for f in fields(cls)}
        values = {}
        for split, arrays in splits.items():
            for key, array in arrays.items():
                field = f"{key}_{split}"
                if field not in known:
                    raise DatasetError(f"{name}: internal error: no field {field!r} in Dataset.")
                values[field] = array
        return cls(name=name, source=source, **values)

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Returns ``(x, y)`` of split 'train', 'val' or 'test' (y may be None)."""
        if split not in SPLITS:
            raise DatasetError(f"Unknown split {split!r}; valid splits are {', '.join(SPLITS)}.")
        x = getattr(self, f"x_{split}")
        if x is None:
            raise DatasetError(f"Dataset {self.name!r} has no {split!r} split.")
        return x, getattr(self, f"y_{split}")

    @property
    def sizes(self) -> dict[str, int]:
        """Number of examples per available split, e.g. {'train': 50000, ...}."""
        return {s: len(getattr(self, f"x_{s}")) for s in SPLITS if getattr(self, f"x_{s}") is not None}

    def splits(self) -> dict[str, dict[str, np.ndarray]]:
        """The inverse of :meth:`from_splits`: the arrays present, by split."""
        return {s: self._arrays(s) for s in SPLITS if getattr(self, f"x_{s}") is not None}

    def _arrays(self, split: str) -> dict[str, np.ndarray]:
        arrays = {key: getattr(self, f"{key}_{split}") for key in SPLIT_KEYS}
        return {key: a for key, a in arrays.items() if a is not None}


def _check_split(name: str, split: str, arrays: dict[str, np.ndarray]) -> None:
    # These are invariants of every reader; a violation is a bug, but it is
    # reported like bad data so that it never passes silently.
    x = arrays.get("x")
    if x is None:
        if split != "val":
            raise DatasetError(f"{name}: internal error: split {split!r} has no images.")
        if arrays:
            raise DatasetError(f"{name}: internal error: split {split!r} has labels but no images.")
        return
    if x.dtype != np.float32 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise DatasetError(
            f"{name}: internal error: x_{split} has dtype {x.dtype} and shape {x.shape}, "
            f"expected float32 (N, 28, 28, 1)."
        )
    # Written so that NaN fails too.
    if x.size and not (x.min() >= 0 and x.max() <= 1):
        raise DatasetError(f"{name}: x_{split} holds values outside [0, 1]; the data are corrupted.")
    for key in ("y", "alphabet"):
        labels = arrays.get(key)
        if labels is not None and (labels.shape != (len(x),) or labels.dtype.kind not in "iu"):
            raise DatasetError(
                f"{name}: internal error: {key}_{split} has dtype {labels.dtype} and shape "
                f"{labels.shape}, expected integers of shape ({len(x)},)."
            )
