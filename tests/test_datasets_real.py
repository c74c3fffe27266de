"""Tests on the real data files.

They run when ECHO_DATA_DIR is set (CI sets it to /work/shared/data) and then
FAIL if a file is missing. Fashion-MNIST comes from the Debian package
dataset-fashion-mnist; its test also runs without ECHO_DATA_DIR when the
package is installed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

import datasets
from datasets import registry, search, tfds_source

DATA_DIR = os.environ.get("ECHO_DATA_DIR")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

needs_data_dir = pytest.mark.skipif(not DATA_DIR, reason="ECHO_DATA_DIR is not set; no real data files to test")
needs_fashion_mnist = pytest.mark.skipif(
    not DATA_DIR and not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="neither ECHO_DATA_DIR is set nor the Debian package dataset-fashion-mnist installed",
)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for this module, so that each real file is parsed only once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def local_files_only(monkeypatch, shared_cache):
    """A private cache; TFDS is never tried, so a missing file fails the test."""
    monkeypatch.setenv("ECHO_CACHE_DIR", str(shared_cache))

    def no_tfds(recipe):
        raise ConnectionError("the real-data tests must find local files, not TFDS")

    monkeypatch.setattr(tfds_source, "fetch", no_tfds)


def amat_row(path: Path, row: int) -> np.ndarray:
    with gzip.open(path, "rt") as lines:
        for k, line in enumerate(lines):
            if k == row:
                return np.array(line.split(), dtype=np.float32)
    raise AssertionError(f"{path} has fewer than {row + 1} lines")


@needs_data_dir
def test_real_binarized_mnist():
    directory = Path(DATA_DIR) / "binarized_mnist"

    dataset = datasets.load("binary_mnist")

    assert dataset.sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    for split in ("train", "val", "test"):
        x, y = dataset.split(split)
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1) and y is None
        assert set(np.unique(x)) == {0.0, 1.0}
    assert str(directory) in dataset.source
    # Checked against the text of the file itself.
    np.testing.assert_array_equal(dataset.x_test[9_999].ravel(), amat_row(directory / "binarized_mnist_test.amat.gz", 9_999))
    np.testing.assert_array_equal(dataset.x_train[123].ravel(), amat_row(directory / "binarized_mnist_train.amat.gz", 123))


@needs_data_dir
def test_real_binarized_mnist_loads_again_from_the_cache_in_well_under_two_seconds(monkeypatch):
    datasets.load("binary_mnist")

    def no_parsing(path):
        raise AssertionError(f"{path} was parsed again instead of read from the cache")

    monkeypatch.setattr(registry, "read_amat", no_parsing)
    start = time.perf_counter()
    dataset = datasets.load("binary_mnist")
    elapsed = time.perf_counter() - start

    assert dataset.sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    assert elapsed < 2.0


def archive_drawings(path: Path) -> dict[str, bytes]:
    """The SHA-256 of every PNG in an Omniglot archive, by its path below the archive root."""
    with zipfile.ZipFile(path) as archive:
        return {
            "/".join(PurePosixPath(name).parts[1:]): hashlib.sha256(archive.read(name)).digest()
            for name in archive.namelist()
            if name.endswith(".png")
        }


def character(path: str) -> tuple[str, str]:
    """The (alphabet, character) folders of a drawing's path."""
    alphabet, character, _ = path.split("/")
    return alphabet, character


def characters(drawings: dict[str, bytes]) -> set[tuple[str, str]]:
    return {character(path) for path in drawings}


@needs_data_dir
def test_real_omniglot_small_archives():
    directory = Path(DATA_DIR) / "omniglot"
    train = archive_drawings(directory / "images_background_small1.zip")
    test = archive_drawings(directory / "images_background_small2.zip")
    kept = {path: digest for path, digest in test.items() if train.get(path) != digest}
    dropped = len(test) - len(kept)
    assert dropped == 1_000  # the Greek and Latin alphabets are in both archives

    dataset = datasets.load("omniglot")

    assert dataset.sizes == {"train": len(train), "test": len(kept)}
    assert dataset.source.endswith(
        f"{len(train)} train, {len(kept)} test images; "
        f"{dropped} test drawings identical to training drawings were dropped"
    )
    for x in (dataset.x_train, dataset.x_test):
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
        assert 0 <= x.min() and x.max() <= 1 and 0 < x.mean() < 0.5
    assert len(np.unique(dataset.y_train)) == len(characters(train))
    assert len(np.unique(dataset.y_test)) == len(characters(kept))
    # A character in both splits keeps its class.
    shared = len(set(dataset.y_train) & set(dataset.y_test))
    assert shared == len(characters(train) & characters(kept))
    # The test split is the kept drawings in path order: its classes follow their folders one to one.
    folders = [character(path) for path in sorted(kept)]
    assert len(set(zip(folders, dataset.y_test.tolist()))) == len(set(folders)) == len(set(dataset.y_test))
    # No test image equals a training image of its character, the one at its path included.
    train_images = {(y, x.tobytes()) for y, x in zip(dataset.y_train.tolist(), dataset.x_train)}
    assert not any((y, x.tobytes()) in train_images for y, x in zip(dataset.y_test.tolist(), dataset.x_test))


def idx_labels(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    return np.frombuffer(data, np.uint8, offset=8)


@needs_fashion_mnist
def test_real_fashion_mnist():
    dataset = datasets.load("fmnist")

    assert dataset.sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    for split in ("train", "val", "test"):
        x, y = dataset.split(split)
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
        assert 0 <= x.min() and x.max() == 1
        assert set(np.unique(y)) == set(range(10))
    directory = search.search(registry.REGISTRY["fmnist"], search.search_roots(None)).hit.directory
    assert str(directory) in dataset.source
    labels = idx_labels(directory / "train-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(dataset.y_train, labels[:50_000])
    np.testing.assert_array_equal(dataset.y_val, labels[50_000:])


@needs_fashion_mnist
def test_real_binary_fashion_mnist():
    gray = datasets.load("fmnist")
    binary = datasets.load("binary_fmnist")

    assert binary.sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    assert set(np.unique(binary.x_test)) == {0.0, 1.0}
    assert binary.x_train.mean() == pytest.approx(gray.x_train.mean(), abs=1e-3)
    np.testing.assert_array_equal(binary.y_test, gray.y_test)
