"""tf.data input pipelines for training and evaluation, and random subsets of a split.

The model's Echo noise for an example is built from the other examples of its
batch, so every batch the model sees is full (training drops the remainder and
evaluation repeats examples, with weight 0, instead of padding) and a random sample
of the data (training shuffles every epoch, evaluation takes a seeded permutation).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .errors import DatasetError


def training_pipeline(x: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """One epoch of ``x`` in full batches (batch_size, ...), in a random order fixed by ``seed``.

    The order is a shuffle of all N examples (buffer N) with ``seed``, the same on every
    pass, so that an epoch's order depends on its seed alone (the runner seeds each epoch
    from the run's seed and the epoch). The last N mod batch_size examples of the order
    are dropped so that every batch is full; as the order changes from epoch to epoch,
    those examples are used in other epochs.
    """
    n = _check_enough(x, batch_size)
    return (
        tf.data.Dataset.from_tensor_slices(x)
        .shuffle(n, seed=seed, reshuffle_each_iteration=False)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_pipeline(x: np.ndarray, batch_size: int, seed: int | None) -> tf.data.Dataset:
    """``(x_batch, weight_batch)`` pairs covering ``x`` once, every batch full.

    The examples are taken in the order ``evaluation_order(N, seed)``: a random
    permutation fixed by ``seed``, so that every batch is a random sample of the data
    (an Echo model's noise for an example is built from the other examples of its batch,
    and its exact rate assumes they are independent draws; data files are often sorted,
    e.g. binarized MNIST's test file), or x's own order for ``seed=None``.

    With that order o, batches are x[o[0:b]], x[o[b:2b]], ...; if N is not a multiple of
    b, the last batch is the last b examples of the order, whose first (b - N mod b)
    were already in the previous batch and get weight 0.0; all others get 1.0. A
    weighted mean over all batches therefore counts every example exactly once, and the
    examples of weight 1.0, in sequence, are x[o[0]], x[o[1]], ..., x[o[N-1]]. Weights
    are float32 of shape (batch_size,).
    """
    n = _check_enough(x, batch_size)
    indices, weights = evaluation_indices(n, batch_size)
    indices = evaluation_order(n, seed)[indices]
    images = tf.constant(x)
    return (
        tf.data.Dataset.from_tensor_slices((indices, weights))
        .batch(batch_size, drop_remainder=True)
        .map(lambda index, weight: (tf.gather(images, index), weight))
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_order(n: int, seed: int | None) -> np.ndarray:
    """The order in which `evaluation_pipeline` visits N = n examples (int64 [n]): a random
    permutation fixed by ``seed``, or 0, 1, ..., n-1 for ``seed=None``."""
    if seed is None:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng(seed).permutation(n).astype(np.int64)


def in_data_order(rows: np.ndarray, seed: int | None) -> np.ndarray:
    """Rows [N, ...] computed in `evaluation_order(N, seed)` (the examples of weight 1.0 of
    `evaluation_pipeline`, in sequence), put back in the data's own order: row i for x[i]."""
    ordered = np.empty_like(rows)
    ordered[evaluation_order(len(rows), seed)] = rows
    return ordered


def evaluation_batch_count(n: int, batch_size: int) -> int:
    """Number of batches evaluation_pipeline yields for N = n examples: ceil(n / batch_size)."""
    return -(-n // batch_size)


def evaluation_indices(n: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The example index (int64) and weight (float32) of every evaluation batch slot, flattened.

    Both have length evaluation_batch_count(n, batch_size) * batch_size.
    """
    full = n // batch_size * batch_size
    indices = np.arange(full)
    weights = np.ones(full, np.float32)
    if full < n:
        indices = np.concatenate([indices, np.arange(n - batch_size, n)])
        tail = np.ones(batch_size, np.float32)
        tail[: batch_size - (n - full)] = 0.0
        weights = np.concatenate([weights, tail])
    return indices.astype(np.int64), weights


def subsample(
    x: np.ndarray, y: np.ndarray | None, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """A random subset of ``n`` examples (and their labels, if ``y`` is not None).

    The subset is in random order, not in the data's order: binarized MNIST's
    test file is sorted by class, and batches of one class would bias Echo noise.
    """
    if not 0 < n <= len(x):
        raise DatasetError(
            f"Cannot take a subset of {n} examples from {len(x)}; need 0 < n <= {len(x)}."
        )
    chosen = np.random.default_rng(seed).permutation(len(x))[:n]
    return x[chosen], None if y is None else y[chosen]


def keep_per_label(
    x: np.ndarray, y: np.ndarray | None, n_per_label: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_label`` random examples of every class in ``y``, in random order."""
    if y is None:
        raise DatasetError("keep_per_label needs labels, but this dataset has none (y is None).")
    if n_per_label < 1:
        raise DatasetError(f"keep_per_label needs n_per_label >= 1, got {n_per_label}.")
    labels, counts = np.unique(y, return_counts=True)
    short = [f"{label} ({count})" for label, count in zip(labels, counts) if count < n_per_label]
    if short:
        raise DatasetError(
            f"Cannot keep {n_per_label} examples per label: too few for label(s) {', '.join(short)}."
        )
    rng = np.random.default_rng(seed)
    per_label = [rng.permutation(np.flatnonzero(y == label))[:n_per_label] for label in labels]
    chosen = rng.permutation(np.concatenate(per_label))
    return x[chosen], y[chosen]


def _check_enough(x: np.ndarray, batch_size: int) -> int:
    if batch_size < 1:
        raise DatasetError(f"batch_size must be at least 1, got {batch_size}.")
    if len(x) < batch_size:
        raise DatasetError(
            f"Only {len(x)} examples for batches of {batch_size}: every batch must be full, "
            "so use a smaller batch size or more data."
        )
    return len(x)
