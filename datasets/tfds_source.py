"""The last resort: TensorFlow Datasets, which downloads on machines with internet access.

tensorflow_datasets is imported only when this path is reached, because
importing it (and TensorFlow) takes seconds.
"""

from __future__ import annotations

import os
import socket

import numpy as np

from .dataset import Splits
from .errors import DatasetError
from .registry import TfdsRecipe

# Reaching TFDS's storage host first makes an offline machine fail in seconds
# instead of waiting for the downloader's connection timeouts and retries.
NETWORK_PROBE = ("storage.googleapis.com", 443)
PROBE_TIMEOUT_S = 10.0
_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
_BATCH = 1024


def fetch(recipe: TfdsRecipe) -> Splits:
    """Reads ``recipe``'s dataset through TFDS, downloading and preparing it first if needed.

    Returns splits in our layout (see TfdsRecipe). TFDS keeps its own copy in
    its data directory (~/tensorflow_datasets or $TFDS_DATA_DIR).
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(recipe.name)
    if not builder.is_prepared():
        check_network()
        builder.download_and_prepare()
    return {ours: _read_split(builder, recipe, theirs) for ours, theirs in recipe.splits.items()}


def check_network() -> None:
    """Raises DatasetError if the internet is out of reach (skipped behind a proxy)."""
    if any(os.environ.get(variable) for variable in _PROXY_VARIABLES):
        return
    host, port = NETWORK_PROBE
    try:
        socket.create_connection(NETWORK_PROBE, timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise DatasetError(
            f"no internet access, so nothing can be downloaded (cannot reach {host}:{port}: {exc})"
        ) from exc


def _read_split(builder, recipe: TfdsRecipe, split: str) -> dict[str, np.ndarray]:
    chunks: dict[str, list[np.ndarray]] = {"x": [], **{key: [] for key in recipe.labels}}
    for batch in builder.as_dataset(split=split, shuffle_files=False).batch(_BATCH).as_numpy_iterator():
        images = batch["image"]
        if images.shape[1:] != recipe.image_shape:
            raise DatasetError(
                f"its '{split}' images have shape {images.shape[1:]}, expected {recipe.image_shape}"
            )
        chunks["x"].append(recipe.image(images))
        for ours, theirs in recipe.labels.items():
            chunks[ours].append(batch[theirs].astype(np.int64))
    if not chunks["x"]:
        raise DatasetError(f"its '{split}' split is empty")
    return {key: np.concatenate(arrays) for key, arrays in chunks.items()}
