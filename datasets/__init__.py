"""Datasets for the rate-distortion experiments, as 28x28 images in [0, 1] with ink = 1.

``load(name, data_dir=None)`` returns a :class:`Dataset`; ``NAMES`` lists the
valid names; every problem is a :class:`DatasetError` with a user-facing
message. The tf.data input pipelines are in :mod:`datasets.pipeline`; the
command line is ``python -m datasets``. See datasets/README.md.
"""

from .dataset import Dataset
from .errors import DatasetError
from .loader import load
from .registry import NAMES

__all__ = ["NAMES", "Dataset", "DatasetError", "load"]
