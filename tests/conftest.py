"""Fixtures shared by the test modules."""

import pytest

from experiment.floating_point import flush_subnormals_to_zero

# The suite computes as the entry points do (experiment.console.import_tensorflow_quietly).
flush_subnormals_to_zero()

import tensorflow as tf  # noqa: E402

# Two logical CPU devices, before TensorFlow's runtime starts, for the data-parallel tests
# (`experiment.devices`); everything else runs on the first, as it would without them.
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

import datasets  # noqa: E402
from support import tiny_images  # noqa: E402


@pytest.fixture
def tiny_data(monkeypatch):
    """`datasets.load` returns 100 / 40 / 50 random binary images (50 is not a multiple
    of the batch, so evaluation needs its overlapping last batch)."""
    dataset = datasets.Dataset(
        name="tiny",
        x_train=tiny_images(100, seed=1),
        x_val=tiny_images(40, seed=2),
        x_test=tiny_images(50, seed=3),
        source="synthetic test images",
    )
    monkeypatch.setattr(datasets, "load", lambda name, data_dir=None: dataset)
    return dataset
