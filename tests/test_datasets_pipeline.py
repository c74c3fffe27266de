"""Tests of the tf.data pipelines and the random subsets in datasets.pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from datasets import DatasetError
from datasets.pipeline import (
    evaluation_batch_count,
    evaluation_order,
    evaluation_pipeline,
    keep_per_label,
    subsample,
    training_pipeline,
)


def numbered(n: int) -> np.ndarray:
    """n images whose every pixel holds the example's own index, so batches reveal their indices."""
    return np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 28, 28, 1)).copy()


def epochs(dataset, count: int) -> list[list[list[int]]]:
    """The example indices of every batch of ``count`` passes over ``dataset``."""
    return [[batch[:, 0, 0, 0].astype(int).tolist() for batch in dataset.as_numpy_iterator()] for _ in range(count)]


def test_training_batches_are_full_and_each_epoch_uses_each_example_at_most_once():
    n, batch_size = 10, 3

    for epoch in epochs(training_pipeline(numbered(n), batch_size, seed=1), count=20):
        assert [len(batch) for batch in epoch] == [3, 3, 3]
        seen = [index for batch in epoch for index in batch]
        # n // batch_size full batches; the n mod batch_size = 1 remaining example is dropped.
        assert len(set(seen)) == 9 and set(seen) <= set(range(n))


def test_epoch_seeds_give_new_orders_and_so_use_the_dropped_examples_too():
    orders = [tuple(index for batch in epochs(training_pipeline(numbered(10), 3, seed=seed), count=1)[0] for index in batch)
              for seed in range(20)]

    assert len(set(orders)) > 1
    assert set().union(*orders) == set(range(10))


def test_training_order_is_fixed_by_the_seed_alone():
    same_a = epochs(training_pipeline(numbered(50), 5, seed=7), count=3)
    same_b = epochs(training_pipeline(numbered(50), 5, seed=7), count=1)
    other = epochs(training_pipeline(numbered(50), 5, seed=8), count=1)

    # Every pass over the pipeline is the same epoch: the order depends on the seed only.
    assert same_a == [same_b[0]] * 3
    assert same_b != other


def test_training_needs_at_least_one_full_batch():
    with pytest.raises(DatasetError, match="Only 4 examples for batches of 5"):
        training_pipeline(numbered(4), 5, seed=0)
    with pytest.raises(DatasetError, match="batch_size must be at least 1"):
        training_pipeline(numbered(4), 0, seed=0)


@pytest.mark.parametrize("seed", [None, 5])
@pytest.mark.parametrize("n, batch_size", [(10, 4), (12, 4), (7, 7), (9, 2), (100, 32)])
def test_evaluation_batches_are_full_and_weights_count_every_example_once(n, batch_size, seed):
    batches = list(evaluation_pipeline(numbered(n), batch_size, seed).as_numpy_iterator())

    assert len(batches) == evaluation_batch_count(n, batch_size) == -(-n // batch_size)
    counts = np.zeros(n)
    for x, weights in batches:
        assert x.shape == (batch_size, 28, 28, 1) and weights.shape == (batch_size,)
        assert weights.dtype == np.float32 and set(np.unique(weights)) <= {0.0, 1.0}
        np.add.at(counts, x[:, 0, 0, 0].astype(int), weights)
    np.testing.assert_array_equal(counts, np.ones(n))
    weighted_mean = sum(float((x[:, 0, 0, 0] * w).sum()) for x, w in batches) / sum(float(w.sum()) for _, w in batches)
    assert weighted_mean == pytest.approx((n - 1) / 2)


def test_evaluation_without_a_seed_covers_the_data_in_order_and_repeats_the_tail():
    batches = list(evaluation_pipeline(numbered(10), 4, None).as_numpy_iterator())

    assert [x[:, 0, 0, 0].astype(int).tolist() for x, _ in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert [w.tolist() for _, w in batches] == [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]]


def test_evaluation_needs_at_least_one_full_batch():
    with pytest.raises(DatasetError, match="Only 3 examples for batches of 4"):
        evaluation_pipeline(numbered(3), 4, 0)


def test_a_seeded_evaluation_takes_the_examples_in_a_fixed_random_order():
    # numbered(n)[i] holds i: the kept slots, in sequence, must be evaluation_order(n, seed).
    order = evaluation_order(1000, seed=7)
    assert sorted(order.tolist()) == list(range(1000)) and not np.array_equal(order, np.arange(1000))
    np.testing.assert_array_equal(order, evaluation_order(1000, seed=7))
    assert not np.array_equal(order, evaluation_order(1000, seed=8))
    batches = list(evaluation_pipeline(numbered(1000), 30, 7).as_numpy_iterator())
    kept = np.concatenate([x[:, 0, 0, 0][w > 0] for x, w in batches]).astype(int)
    np.testing.assert_array_equal(kept, order)


def test_seeded_evaluation_batches_are_random_samples_of_sorted_data():
    # Sorted data (as binarized MNIST's test file by class): 10 classes of 100 in a row.
    # In file order every batch of 100 is one class; in a seeded order each batch holds
    # about 10 of each class, as a random sample of the data would.
    labels = np.repeat(np.arange(10), 100).astype(np.float32)
    x = np.broadcast_to(labels[:, None, None, None], (1000, 28, 28, 1)).copy()
    file_order = [np.unique(b[:, 0, 0, 0]).size for b, _ in evaluation_pipeline(x, 100, None).as_numpy_iterator()]
    assert file_order == [1] * 10
    counts = np.array([np.bincount(b[:, 0, 0, 0].astype(int), minlength=10)
                       for b, _ in evaluation_pipeline(x, 100, 3).as_numpy_iterator()])
    assert counts.min() >= 1 and counts.max() <= 25  # hypergeometric(100 of 1000, 100 of a class): mean 10, sd 2.8


def test_subsample_is_a_random_subset_in_random_order():
    x = numbered(100)
    y = np.arange(100) % 10

    x_sub, y_sub = subsample(x, y, 50, seed=3)

    indices = x_sub[:, 0, 0, 0].astype(int)
    assert len(set(indices)) == 50 and set(indices) <= set(range(100))
    np.testing.assert_array_equal(y_sub, indices % 10)
    assert not np.all(np.diff(indices) > 0)
    again, _ = subsample(x, y, 50, seed=3)
    np.testing.assert_array_equal(again, x_sub)
    other, _ = subsample(x, y, 50, seed=4)
    assert not np.array_equal(other, x_sub)


def test_subsample_without_labels_and_its_limits():
    x_sub, y_sub = subsample(numbered(5), None, 5, seed=0)
    assert sorted(x_sub[:, 0, 0, 0].astype(int)) == [0, 1, 2, 3, 4] and y_sub is None
    with pytest.raises(DatasetError, match="subset of 6 examples from 5"):
        subsample(numbered(5), None, 6, seed=0)
    with pytest.raises(DatasetError, match="subset of 0 examples"):
        subsample(numbered(5), None, 0, seed=0)


def test_keep_per_label_keeps_n_random_examples_of_every_class():
    x = numbered(60)
    y = np.arange(60) % 3

    x_kept, y_kept = keep_per_label(x, y, 4, seed=0)

    indices = x_kept[:, 0, 0, 0].astype(int)
    assert len(set(indices)) == 12
    np.testing.assert_array_equal(y_kept, indices % 3)
    assert np.bincount(y_kept).tolist() == [4, 4, 4]
    assert not np.all(np.diff(y_kept) >= 0)


def test_keep_per_label_errors():
    with pytest.raises(DatasetError, match="needs labels"):
        keep_per_label(numbered(4), None, 1, seed=0)
    with pytest.raises(DatasetError, match=r"too few for label\(s\) 2 \(1\)"):
        keep_per_label(numbered(7), np.array([0, 0, 1, 1, 2, 0, 1]), 2, seed=0)
    with pytest.raises(DatasetError, match="n_per_label >= 1"):
        keep_per_label(numbered(4), np.zeros(4, int), 0, seed=0)
