"""Tests of the datasets package on small files that the tests write themselves."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

import datasets
from datasets import Dataset, DatasetError, cache, registry, search, tfds_source
from datasets.__main__ import main

REPO = Path(__file__).resolve().parents[1]
REAL_FETCH = tfds_source.fetch
REAL_CHECK_NETWORK = tfds_source.check_network

# Small stand-ins for the standard files' example counts (see the `small_files` fixture).
AMAT_ROWS = {"train": 4, "valid": 3, "test": 2}
IDX_TRAIN, IDX_TEST, IDX_VAL = 7, 3, 2
CHARDATA_TRAIN, CHARDATA_TEST = 4, 2


class TfdsCalls(list):
    """Records the TFDS recipes that the loader asked for."""


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path) -> TfdsCalls:
    """A private cache, no data directories but those a test makes, and no TFDS downloads."""
    monkeypatch.setenv("ECHO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ECHO_DATA_DIR", raising=False)
    monkeypatch.setattr(search, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    calls = TfdsCalls()

    def offline_fetch(recipe):
        calls.append(recipe.name)
        raise ConnectionError("TFDS is disabled in these tests")

    monkeypatch.setattr(tfds_source, "fetch", offline_fetch)
    return calls


@pytest.fixture(autouse=True)
def small_files(monkeypatch):
    """Lets the loaders accept the tiny files of these tests in place of the standard ones."""
    counts = {
        **{f"binarized_mnist_{split}.amat": rows for split, rows in AMAT_ROWS.items()},
        "train-images-idx3-ubyte": IDX_TRAIN,
        "t10k-images-idx3-ubyte": IDX_TEST,
        "chardata.mat:data": CHARDATA_TRAIN,
        "chardata.mat:testdata": CHARDATA_TEST,
    }
    monkeypatch.setattr(registry, "EXPECTED_COUNTS", counts)
    monkeypatch.setattr(registry, "VALIDATION_SIZE", IDX_VAL)


# --- writers of the standard formats -------------------------------------------------------


def write_amat(path: Path, rows: np.ndarray) -> Path:
    """Rows of 0/1 as text, 784 per line separated by spaces, gzipped if the name ends in .gz."""
    text = "".join(" ".join(str(v) for v in row) + "\n" for row in rows).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


def write_binarized_mnist(directory: Path, seed: int = 0, suffix: str = ".amat.gz") -> dict[str, np.ndarray]:
    """Random binarized-MNIST files; returns the rows written, by our split names."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, ours in (("train", "train"), ("valid", "val"), ("test", "test")):
        rows = rng.integers(0, 2, size=(AMAT_ROWS[split], 784))
        write_amat(directory / f"binarized_mnist_{split}{suffix}", rows)
        written[ours] = rows
    return written


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(directory: Path, seed: int = 0, gz: bool = True) -> dict[str, np.ndarray]:
    """MNIST-format files with random pixels and labels; returns what was written."""
    rng = np.random.default_rng(seed)
    written = {
        "train_x": rng.integers(0, 256, size=(IDX_TRAIN, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, size=IDX_TRAIN, dtype=np.uint8),
        "test_x": rng.integers(0, 256, size=(IDX_TEST, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, size=IDX_TEST, dtype=np.uint8),
    }
    names = {
        "train_x": "train-images-idx3-ubyte",
        "train_y": "train-labels-idx1-ubyte",
        "test_x": "t10k-images-idx3-ubyte",
        "test_y": "t10k-labels-idx1-ubyte",
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in names.items():
        data = idx_bytes(written[key])
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return written


def stroke_images(n: int) -> np.ndarray:
    """n float images (n, 28, 28): image k has a horizontal stroke of value 0.5 on row 1, columns 0..k.

    The stroke is horizontal, so reading the file in the wrong order (row- instead
    of column-major) would turn it into a vertical one.
    """
    images = np.zeros((n, 28, 28))
    for k in range(n):
        images[k, 1, : k + 1] = 0.5
    return images


def chardata_fields(images: np.ndarray, alphabets: list[int], characters: list[int], n_alphabets: int = 3):
    """chardata.mat fields for one split: columns are images flattened in column-major order."""
    data = np.stack([image.flatten(order="F") for image in images], axis=1)
    target = np.zeros((n_alphabets, len(images)))
    target[alphabets, np.arange(len(images))] = 1
    return data, target, np.array([characters], dtype=float)


# (alphabet, character number within it) of the chardata test file's images.
CHARDATA_TRAIN_PAIRS = [(0, 1), (0, 2), (2, 1), (0, 1)]
CHARDATA_TEST_PAIRS = [(2, 1), (1, 3)]


def write_chardata(path: Path, **replace) -> None:
    train = chardata_fields(stroke_images(CHARDATA_TRAIN), *map(list, zip(*CHARDATA_TRAIN_PAIRS)))
    test = chardata_fields(stroke_images(CHARDATA_TEST)[::-1], *map(list, zip(*CHARDATA_TEST_PAIRS)))
    fields = dict(zip(("data", "target", "targetchar"), train))
    fields.update(zip(("testdata", "testtarget", "testtargetchar"), test))
    fields.update(replace)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {k: v for k, v in fields.items() if v is not None})


def drawing(*blocks: tuple[int, int, int, int]) -> np.ndarray:
    """A 105x105 Omniglot-style drawing: white (255) with black (0) blocks [r0:r1, c0:c1]."""
    image = np.full((105, 105), 255, np.uint8)
    for r0, r1, c0, c1 in blocks:
        image[r0:r1, c0:c1] = 0
    return image


def png(image: np.ndarray) -> bytes:
    import tensorflow as tf

    return tf.io.encode_png(image[..., None] if image.ndim == 2 else image).numpy()


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


# Expected 28x28 area averages, worked out by hand. The reader computes them as two float32
# matrix products in which each output sums at most 5 non-zero products of terms <= 1, so
# its error is below 10 ulps of 1 (6e-7): the tests compare with atol 1e-6.
# A 4x4 ink block in the corner: output pixel (0, 0) covers input [0, 3.75)^2, all ink;
# pixel (0, 1) covers columns [3.75, 7.5), of which [3.75, 4) is ink: 0.25 / 3.75 = 1/15;
# pixel (1, 1) gets (1/15)^2.
CORNER = drawing((0, 4, 0, 4))
CORNER_28 = np.zeros((28, 28), np.float32)
CORNER_28[0, 0], CORNER_28[0, 1], CORNER_28[1, 0], CORNER_28[1, 1] = 1, 1 / 15, 1 / 15, 1 / 225
# A 15x15 block at rows 15..29, columns 30..44 is exactly output rows 4..7, columns 8..11.
ALIGNED = drawing((15, 30, 30, 45))
ALIGNED_28 = np.zeros((28, 28), np.float32)
ALIGNED_28[4:8, 8:12] = 1
BLANK = drawing()
FULL = drawing((0, 105, 0, 105))


def write_omniglot_archives(directory: Path, names=("images_background", "images_evaluation")) -> None:
    """Two archives: background has alphabets Alpha (2 characters) and Beta; evaluation has Gamma."""
    background, evaluation = names
    write_zip(
        directory / f"{background}.zip",
        {
            f"{background}/": b"",
            f"{background}/Beta/character01/0002_01.png": png(FULL),
            f"{background}/Alpha/character02/0001_01.png": png(ALIGNED),
            f"{background}/Alpha/character01/0001_02.png": png(BLANK),
            f"{background}/Alpha/character01/0001_01.png": png(CORNER),
            f"__MACOSX/{background}/Alpha/character01/._0001_01.png": b"not an image",
        },
    )
    write_zip(
        directory / f"{evaluation}.zip",
        {
            f"{evaluation}/Gamma/character01/0003_01.png": png(ALIGNED),
            f"{evaluation}/Gamma/character01/0003_02.png": png(CORNER),
        },
    )


# --- readers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".amat", ".amat.gz"])
def test_binary_mnist_reads_amat_files(tmp_path, suffix):
    written = write_binarized_mnist(tmp_path / "binarized_mnist", suffix=suffix)

    dataset = datasets.load("binary_mnist", tmp_path)

    assert dataset.name == "binary_mnist"
    for split in ("train", "val", "test"):
        x, y = dataset.split(split)
        assert x.dtype == np.float32 and x.shape == (len(written[split]), 28, 28, 1)
        np.testing.assert_array_equal(x.reshape(len(x), 784), written[split])
        assert y is None
    assert str(tmp_path / "binarized_mnist") in dataset.source
    assert f"binarized_mnist_train{suffix}" in dataset.source


def test_amat_reader_accepts_other_whitespace_and_no_final_newline(tmp_path):
    rows = np.random.default_rng(1).integers(0, 2, size=(2, 784))
    text = "\r\n".join("\t".join(map(str, row)) + "  " for row in rows)
    (tmp_path / "m.amat").write_text(text)

    np.testing.assert_array_equal(datasets.readers.read_amat(tmp_path / "m.amat"), rows)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("subdir", ["fashion-mnist", "fashion_mnist", "fmnist", ""])
def test_fmnist_reads_idx_files_and_holds_out_the_last_training_examples(tmp_path, subdir, gz):
    written = write_idx_set(tmp_path / subdir, gz=gz)

    dataset = datasets.load("fmnist", tmp_path)

    cut = IDX_TRAIN - IDX_VAL
    expected = {
        "train": (written["train_x"][:cut], written["train_y"][:cut]),
        "val": (written["train_x"][cut:], written["train_y"][cut:]),
        "test": (written["test_x"], written["test_y"]),
    }
    for split, (pixels, labels) in expected.items():
        x, y = dataset.split(split)
        assert x.dtype == np.float32 and x.shape == (len(pixels), 28, 28, 1)
        np.testing.assert_array_equal(x[..., 0], pixels.astype(np.float32) / 255)
        np.testing.assert_array_equal(y, labels)
        assert y.dtype.kind == "i"


def test_mnist_is_read_from_the_mnist_subdirectory_only(tmp_path):
    write_idx_set(tmp_path, seed=1)
    with pytest.raises(DatasetError, match="not found"):
        datasets.load("mnist", tmp_path)

    written = write_idx_set(tmp_path / "mnist", seed=2)
    dataset = datasets.load("mnist", tmp_path)

    np.testing.assert_array_equal(dataset.y_test, written["test_y"])
    assert str(tmp_path / "mnist") in dataset.source


def test_chardata_is_read_column_major_with_global_character_classes(tmp_path):
    write_chardata(tmp_path / "omniglot" / "chardata.mat")
    write_omniglot_archives(tmp_path / "omniglot")

    dataset = datasets.load("omni", tmp_path)

    assert dataset.name == "omniglot" and dataset.x_val is None
    assert "chardata.mat" in dataset.source
    np.testing.assert_array_equal(dataset.x_train[..., 0], stroke_images(CHARDATA_TRAIN))
    np.testing.assert_array_equal(dataset.x_test[..., 0], stroke_images(CHARDATA_TEST)[::-1])
    assert dataset.x_train[2, 1, :3, 0].tolist() == [0.5, 0.5, 0.5]
    # Pairs numbered in order of first appearance: (0,1)=0, (0,2)=1, (2,1)=2, then (1,3)=3.
    assert dataset.y_train.tolist() == [0, 1, 2, 0]
    assert dataset.y_test.tolist() == [2, 3]
    assert dataset.alphabet_train.tolist() == [0, 0, 2, 0]
    assert dataset.alphabet_test.tolist() == [2, 1]


def test_omniglot_archives_are_downsampled_by_area_with_folder_labels(tmp_path):
    write_omniglot_archives(tmp_path)

    dataset = datasets.load("omniglot", tmp_path)

    # Sorted by path: Alpha/character01/0001_01 (CORNER), 0001_02 (BLANK), Alpha/character02 (ALIGNED),
    # Beta/character01 (FULL).
    expected_train = [CORNER_28, np.zeros((28, 28)), ALIGNED_28, np.ones((28, 28))]
    np.testing.assert_allclose(dataset.x_train[..., 0], expected_train, atol=1e-6)
    np.testing.assert_allclose(dataset.x_test[..., 0], [ALIGNED_28, CORNER_28], atol=1e-6)
    assert dataset.y_train.tolist() == [0, 0, 1, 2] and dataset.y_test.tolist() == [3, 3]
    assert dataset.alphabet_train.tolist() == [0, 0, 0, 1] and dataset.alphabet_test.tolist() == [2, 2]
    assert dataset.x_val is None
    assert "images_background.zip" in dataset.source and "4 train, 2 test" in dataset.source
    assert "dropped" not in dataset.source


def test_omniglot_downsampling_matches_tensorflow_area_resize_and_keeps_the_ink(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(3)
    scribble = np.where(rng.random((105, 105)) < 0.3, 0, 255).astype(np.uint8)
    write_zip(tmp_path / "images_background_small1.zip", {"r/A/c1/1.png": png(scribble)})
    write_zip(tmp_path / "images_background_small2.zip", {"r/B/c1/1.png": png(BLANK)})

    x = datasets.load("omniglot", tmp_path).x_train[0]

    ink = (scribble == 0).astype(np.float32)
    reference = tf.image.resize(ink[None, ..., None], (28, 28), method="area").numpy()[0]
    np.testing.assert_allclose(x, reference, atol=1e-5)
    assert x.mean() == pytest.approx(ink.mean(), abs=1e-5)


def test_omniglot_prefers_full_archives_to_the_small_ones(tmp_path):
    write_omniglot_archives(tmp_path, names=("images_background_small1", "images_background_small2"))
    assert "small" in datasets.load("omniglot", tmp_path).source

    write_zip(tmp_path / "images_background.zip", {"r/A/c/1.png": png(BLANK)})
    write_zip(tmp_path / "images_evaluation.zip", {"r/B/c/1.png": png(FULL), "r/B/c/2.png": png(FULL)})
    dataset = datasets.load("omniglot", tmp_path)

    assert dataset.sizes == {"train": 1, "test": 2}
    assert "images_evaluation.zip" in dataset.source


def write_overlapping_archives(directory: Path) -> None:
    """Small archives like the real ones: under different roots, both hold a Greek alphabet.

    Greek/character01/0001_01.png is the same drawing in both; Greek/character02/0002_01.png
    is a different drawing at the same path; Greek/character03/0004_01.png has the bytes of
    a training drawing at another path.
    """
    write_zip(
        directory / "images_background_small1.zip",
        {
            "images_background_small1/Greek/character01/0001_01.png": png(CORNER),
            "images_background_small1/Greek/character02/0002_01.png": png(ALIGNED),
            "images_background_small1/Latin/character01/0003_01.png": png(FULL),
        },
    )
    write_zip(
        directory / "images_background_small2.zip",
        {
            "images_background_small2/Greek/character01/0001_01.png": png(CORNER),
            "images_background_small2/Greek/character02/0002_01.png": png(BLANK),
            "images_background_small2/Greek/character03/0004_01.png": png(ALIGNED),
            "images_background_small2/Korean/character01/0005_01.png": png(FULL),
        },
    )


def test_omniglot_test_drawings_identical_to_training_drawings_are_dropped(tmp_path):
    write_overlapping_archives(tmp_path)

    dataset = datasets.load("omniglot", tmp_path)

    assert dataset.sizes == {"train": 3, "test": 3}
    np.testing.assert_allclose(dataset.x_test[..., 0], [np.zeros((28, 28)), ALIGNED_28, np.ones((28, 28))], atol=1e-6)
    # Characters: Greek/01 = 0, Greek/02 = 1, Latin/01 = 2 (training), then Greek/03 = 3, Korean/01 = 4;
    # Greek/01 had only the dropped drawing in the test archive, so it is not in the test split.
    assert dataset.y_train.tolist() == [0, 1, 2] and dataset.y_test.tolist() == [1, 3, 4]
    assert dataset.alphabet_train.tolist() == [0, 0, 1] and dataset.alphabet_test.tolist() == [0, 0, 2]
    assert dataset.source.endswith("3 train, 3 test images; 1 test drawing identical to a training drawing was dropped")
    assert datasets.load("omniglot", tmp_path).source == dataset.source


def test_omniglot_archives_with_no_test_drawing_of_their_own_are_reported(tmp_path):
    write_omniglot_archives(tmp_path)
    (tmp_path / "images_evaluation.zip").write_bytes((tmp_path / "images_background.zip").read_bytes())

    with pytest.raises(DatasetError, match="Every drawing in .*images_evaluation.zip is also in"):
        datasets.load("omniglot", tmp_path)


def test_binary_fmnist_is_the_documented_fixed_binarization(tmp_path):
    write_idx_set(tmp_path / "fmnist")
    gray = datasets.load("fmnist", tmp_path)

    binary = datasets.load("binary_fmnist", tmp_path)

    # The documented recipe: one default_rng(20170825), splits in the order train, val, test.
    rng = np.random.default_rng(20170825)
    for split in ("train", "val", "test"):
        x, y = gray.split(split)
        expected = (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)
        np.testing.assert_array_equal(binary.split(split)[0], expected)
        np.testing.assert_array_equal(binary.split(split)[1], y)
    assert "20170825" in binary.source


def test_binarization_keeps_black_and_white_and_the_mean():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 28, 28, 1), np.float32)
    x[:, :10] = 1.0
    x[:, 10:20] = 0.25

    binary = datasets.images.binarize(x, rng)

    assert set(np.unique(binary)) <= {0.0, 1.0}
    assert np.all(binary[:, :10] == 1) and np.all(binary[:, 20:] == 0)
    assert binary[:, 10:20].mean() == pytest.approx(0.25, abs=0.01)


def test_loaded_values_are_images_in_the_unit_interval(tmp_path):
    write_binarized_mnist(tmp_path)
    write_idx_set(tmp_path / "fmnist")
    write_omniglot_archives(tmp_path)
    for name in ("binary_mnist", "fmnist", "binary_fmnist", "omniglot"):
        dataset = datasets.load(name, tmp_path)
        for split in dataset.sizes:
            x = dataset.split(split)[0]
            assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
            assert 0 <= x.min() and x.max() <= 1


# --- search order ----------------------------------------------------------------------------


def test_search_order_data_dir_then_environment_then_system_then_tfds(tmp_path, monkeypatch, isolated):
    places = {
        "argument": tmp_path / "argument",
        "environment": tmp_path / "environment",
        "system": tmp_path / "system",
    }
    written = {place: write_binarized_mnist(path, seed=k) for k, (place, path) in enumerate(places.items())}
    monkeypatch.setenv("ECHO_DATA_DIR", str(places["environment"]))

    def loaded_from(data_dir=None) -> str:
        x = datasets.load("binary_mnist", data_dir).x_test.reshape(-1, 784)
        return next(place for place, rows in written.items() if np.array_equal(x, rows["test"]))

    assert loaded_from(places["argument"]) == "argument"
    assert loaded_from() == "environment"
    monkeypatch.delenv("ECHO_DATA_DIR")
    assert loaded_from() == "system"
    assert isolated == []

    monkeypatch.setattr(search, "SYSTEM_DATA_DIRS", ())
    tfds_rows = np.ones((2, 28, 28, 1), np.float32)
    monkeypatch.setattr(tfds_source, "fetch", lambda recipe: {s: {"x": tfds_rows} for s in recipe.splits})
    dataset = datasets.load("binary_mnist")
    np.testing.assert_array_equal(dataset.x_test, tfds_rows)
    assert dataset.source.startswith("TensorFlow Datasets 'binarized_mnist'")


def test_a_data_dir_without_the_data_falls_through_to_the_next_place(tmp_path, monkeypatch):
    written = write_binarized_mnist(tmp_path / "env")
    monkeypatch.setenv("ECHO_DATA_DIR", str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()

    dataset = datasets.load("binary_mnist", tmp_path / "empty")

    np.testing.assert_array_equal(dataset.x_test.reshape(-1, 784), written["test"])


def test_files_in_the_named_subdirectory_win_over_files_in_the_directory_itself(tmp_path):
    direct = write_binarized_mnist(tmp_path, seed=1)
    assert np.array_equal(datasets.load("binary_mnist", tmp_path).x_test.reshape(-1, 784), direct["test"])

    nested = write_binarized_mnist(tmp_path / "binarized_mnist", seed=2)
    assert np.array_equal(datasets.load("binary_mnist", tmp_path).x_test.reshape(-1, 784), nested["test"])


def test_an_incomplete_file_set_is_not_a_hit_and_is_reported(tmp_path):
    write_binarized_mnist(tmp_path / "binarized_mnist")
    (tmp_path / "binarized_mnist" / "binarized_mnist_valid.amat.gz").unlink()

    with pytest.raises(DatasetError) as error:
        datasets.load("binary_mnist", tmp_path)

    assert "missing binarized_mnist_valid.amat" in str(error.value)


# --- missing data and TFDS failures ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, hints",
    [
        ("binary_mnist", ["binarized_mnist_train.amat", "larocheh", "binarized_mnist/"]),
        ("omniglot", ["chardata.mat", "images_background.zip", "images_evaluation.zip", "yburda/iwae"]),
        ("fmnist", ["apt-get install dataset-fashion-mnist", "train-images-idx3-ubyte"]),
        ("binary_fmnist", ["apt-get install dataset-fashion-mnist"]),
        ("mnist", ["mnist/", "t10k-labels-idx1-ubyte"]),
    ],
)
def test_missing_data_names_every_place_searched_and_how_to_get_it(tmp_path, monkeypatch, isolated, name, hints):
    monkeypatch.setenv("ECHO_DATA_DIR", str(tmp_path / "env"))

    with pytest.raises(DatasetError) as error:
        datasets.load(name, tmp_path / "arg")

    message = str(error.value)
    spec = registry.spec_for(name)
    for root in (tmp_path / "arg", tmp_path / "env", tmp_path / "system"):
        for subdir in spec.subdirs:
            assert f"{root / subdir} (" in message
    assert "$ECHO_DATA_DIR" in message and "data_dir argument" in message and "system location" in message
    assert f"TensorFlow Datasets {spec.tfds.name!r}: failed: ConnectionError" in message
    for hint in hints:
        assert hint in message
    assert isolated == [spec.tfds.name]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(DatasetError) as error:
        datasets.load("cifar10")
    for name in ("binary_mnist", "omniglot", "omni", "fmnist", "binary_fmnist", "mnist"):
        assert name in str(error.value)
    with pytest.raises(DatasetError, match="Unknown dataset"):
        datasets.load(None)


def test_names_are_exported():
    assert set(datasets.NAMES) == {"binary_mnist", "omniglot", "omni", "fmnist", "binary_fmnist", "mnist"}
    assert issubclass(datasets.DatasetError, Exception)


# --- TensorFlow Datasets, mocked -------------------------------------------------------------


def tfds_examples(name: str, split: str) -> dict[str, np.ndarray]:
    """The examples the mocked TFDS serves: known images and labels per dataset and split."""
    n = {"train": 5, "validation": 3, "test": 2}[split]
    rng = np.random.default_rng(zlib.crc32(f"{name}/{split}".encode()))
    if name == "omniglot":
        corner = np.repeat(CORNER[..., None], 3, axis=-1)
        return {
            "image": np.stack([corner] * n),
            "label": np.arange(n) + 100,
            "alphabet": np.arange(n) % 2 + 7,
            "alphabet_char_id": np.arange(n),
        }
    if name == "binarized_mnist":
        return {"image": rng.integers(0, 2, size=(n, 28, 28, 1), dtype=np.uint8)}
    return {
        "image": rng.integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8),
        "label": rng.integers(0, 10, size=n),
    }


@pytest.fixture
def mocked_tfds(monkeypatch):
    """The real TFDS code path with tfds.testing.mock_data serving tfds_examples; no network."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds_source, "fetch", REAL_FETCH)
    probes = []
    monkeypatch.setattr(tfds_source, "check_network", lambda: probes.append(True))

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        return tf.data.Dataset.from_tensor_slices(tfds_examples(self.name, str(split)))

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        yield probes


@pytest.mark.parametrize("name, tfds_name", [("fmnist", "fashion_mnist"), ("mnist", "mnist")])
def test_tfds_grayscale_datasets_hold_out_the_last_training_examples(mocked_tfds, name, tfds_name):
    dataset = datasets.load(name)

    train, test = tfds_examples(tfds_name, "train"), tfds_examples(tfds_name, "test")
    np.testing.assert_array_equal(dataset.x_train, train["image"][:-IDX_VAL] / np.float32(255))
    np.testing.assert_array_equal(dataset.x_val, train["image"][-IDX_VAL:] / np.float32(255))
    np.testing.assert_array_equal(dataset.y_val, train["label"][-IDX_VAL:])
    np.testing.assert_array_equal(dataset.x_test, test["image"] / np.float32(255))
    np.testing.assert_array_equal(dataset.y_test, test["label"])
    assert dataset.source.startswith(f"TensorFlow Datasets {tfds_name!r}")
    assert mocked_tfds == [True]


def test_tfds_binarized_mnist_keeps_its_three_splits(mocked_tfds):
    dataset = datasets.load("binary_mnist")

    for ours, theirs in (("train", "train"), ("val", "validation"), ("test", "test")):
        expected = tfds_examples("binarized_mnist", theirs)["image"].astype(np.float32)
        np.testing.assert_array_equal(dataset.split(ours)[0], expected)
        assert dataset.split(ours)[1] is None


def test_tfds_omniglot_is_converted_like_the_archives(mocked_tfds):
    dataset = datasets.load("omniglot")

    np.testing.assert_allclose(dataset.x_train[..., 0], [CORNER_28] * 5, atol=1e-6)
    assert dataset.y_train.tolist() == [100, 101, 102, 103, 104]
    assert dataset.alphabet_test.tolist() == [7, 8]
    assert dataset.x_val is None


def test_tfds_binary_fmnist_is_binarized(mocked_tfds):
    gray = datasets.load("fmnist")
    binary = datasets.load("binary_fmnist")

    rng = np.random.default_rng(registry.BINARIZE_SEED)
    for split in ("train", "val", "test"):
        expected = (rng.random(gray.split(split)[0].shape, dtype=np.float32) < gray.split(split)[0])
        np.testing.assert_array_equal(binary.split(split)[0], expected.astype(np.float32))


@pytest.mark.parametrize("name", ["binary_mnist", "omniglot", "fmnist", "mnist"])
def test_tfds_feature_specs_match_what_the_loader_expects(monkeypatch, name):
    # mock_data's default generator builds random examples from the real builders'
    # feature specs, so this fails if TFDS's images or label names ever change.
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds_source, "fetch", REAL_FETCH)
    monkeypatch.setattr(tfds_source, "check_network", lambda: None)
    with tfds.testing.mock_data(num_examples=IDX_VAL + 2, max_value=1):
        dataset = datasets.load(name)

    assert all(size >= 2 for size in dataset.sizes.values())
    assert 0 <= dataset.x_train.min() and dataset.x_train.max() <= 1


def test_tfds_without_network_fails_quickly_and_says_so(mocked_tfds, monkeypatch, tmp_path):
    def unreachable(address, timeout):
        assert timeout <= 30
        raise OSError("Network is unreachable")

    monkeypatch.setattr(tfds_source, "check_network", REAL_CHECK_NETWORK)
    monkeypatch.setattr(tfds_source.socket, "create_connection", unreachable)
    for variable in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)

    with pytest.raises(DatasetError) as error:
        datasets.load("fmnist", tmp_path)

    message = str(error.value)
    assert "no internet access" in message and "Network is unreachable" in message
    assert str(tmp_path / "fashion-mnist") in message and "apt-get install dataset-fashion-mnist" in message


def test_tfds_errors_become_dataset_errors(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    def broken(self, split, decoders=None, read_config=None, shuffle_files=False):
        raise RuntimeError("prepared data are damaged")

    monkeypatch.setattr(tfds_source, "fetch", REAL_FETCH)
    monkeypatch.setattr(tfds_source, "check_network", lambda: None)
    with tfds.testing.mock_data(as_dataset_fn=broken), pytest.raises(DatasetError) as error:
        datasets.load("mnist", tmp_path)
    assert "RuntimeError: prepared data are damaged" in str(error.value)


# --- cache -----------------------------------------------------------------------------------


@pytest.fixture
def amat_reads(monkeypatch) -> list[Path]:
    """Records every .amat file that gets parsed."""
    reads = []
    real = registry.read_amat

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(registry, "read_amat", counting)
    return reads


def cache_files(tmp_path) -> list[Path]:
    return sorted((tmp_path / "cache").glob("*.npz"))


def test_a_second_load_comes_from_the_cache(tmp_path, amat_reads):
    written = write_binarized_mnist(tmp_path / "data")

    first = datasets.load("binary_mnist", tmp_path / "data")
    assert len(amat_reads) == 3 and len(cache_files(tmp_path)) == 1
    second = datasets.load("binary_mnist", tmp_path / "data")

    assert len(amat_reads) == 3
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(second.split(split)[0].reshape(-1, 784), written[split])
        assert second.split(split)[0].dtype == np.float32
    assert second.source == first.source


@pytest.mark.parametrize("name", ["fmnist", "binary_fmnist", "omniglot"])
def test_cached_arrays_are_bit_for_bit_the_parsed_ones(tmp_path, name):
    write_idx_set(tmp_path / "fmnist")
    write_chardata(tmp_path / "omniglot" / "chardata.mat")
    first = datasets.load(name, tmp_path)

    second = datasets.load(name, tmp_path)

    assert first is not second
    for split in first.sizes:
        for key, array in first.splits()[split].items():
            cached = second.splits()[split][key]
            assert cached.dtype == array.dtype
            np.testing.assert_array_equal(cached, array)


def test_a_changed_source_file_invalidates_the_cache(tmp_path, amat_reads):
    directory = tmp_path / "binarized_mnist"
    write_binarized_mnist(directory, suffix=".amat")
    datasets.load("binary_mnist", tmp_path)
    test_file = directory / "binarized_mnist_test.amat"
    stat = test_file.stat()

    # Same size, new content, new modification time.
    new_rows = 1 - np.loadtxt(test_file, dtype=int)
    write_amat(test_file, new_rows)
    assert test_file.stat().st_size == stat.st_size
    os.utime(test_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = datasets.load("binary_mnist", tmp_path)
    np.testing.assert_array_equal(changed.x_test.reshape(-1, 784), new_rows)

    # Same modification time, different size.
    mtime = test_file.stat().st_mtime_ns
    test_file.write_bytes(test_file.read_bytes() + b"\n")
    os.utime(test_file, ns=(mtime, mtime))
    reads = len(amat_reads)
    datasets.load("binary_mnist", tmp_path)
    assert len(amat_reads) == reads + 3
    assert len(cache_files(tmp_path)) == 1


def test_a_cache_of_another_format_version_is_rebuilt(tmp_path, amat_reads, monkeypatch):
    write_binarized_mnist(tmp_path)
    datasets.load("binary_mnist", tmp_path)

    monkeypatch.setattr(cache, "FORMAT_VERSION", cache.FORMAT_VERSION + 1)
    datasets.load("binary_mnist", tmp_path)

    assert len(amat_reads) == 6 and len(cache_files(tmp_path)) == 1


def test_the_cache_is_never_written_next_to_the_data(tmp_path):
    write_binarized_mnist(tmp_path / "data")
    before = sorted(p.relative_to(tmp_path / "data") for p in (tmp_path / "data").rglob("*"))

    datasets.load("binary_mnist", tmp_path / "data")

    assert sorted(p.relative_to(tmp_path / "data") for p in (tmp_path / "data").rglob("*")) == before
    assert len(cache_files(tmp_path)) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
        lambda path: path.write_bytes(b"garbage"),
        lambda path: path.write_bytes(b""),
        lambda path: path.write_bytes(
            path.read_bytes()[:1000] + bytes(255 - b for b in path.read_bytes()[1000:2000]) + path.read_bytes()[2000:]
        ),
    ],
    ids=["truncated", "garbage", "empty", "corrupted"],
)
def test_a_damaged_cache_file_is_ignored_and_rebuilt(tmp_path, amat_reads, damage):
    written = write_binarized_mnist(tmp_path)
    datasets.load("binary_mnist", tmp_path)
    (cache_file,) = cache_files(tmp_path)
    damage(cache_file)

    with pytest.warns(UserWarning, match="unreadable dataset cache"):
        dataset = datasets.load("binary_mnist", tmp_path)

    np.testing.assert_array_equal(dataset.x_train.reshape(-1, 784), written["train"])
    assert len(amat_reads) == 6
    datasets.load("binary_mnist", tmp_path)
    assert len(amat_reads) == 6


def test_a_leftover_temporary_file_is_never_trusted(tmp_path, amat_reads):
    written = write_binarized_mnist(tmp_path)
    datasets.load("binary_mnist", tmp_path)
    (cache_file,) = cache_files(tmp_path)
    # What a process killed while writing leaves behind: a partial temporary file ...
    leftover = cache_file.with_name(f".{cache_file.name}.abc123.tmp")
    leftover.write_bytes(cache_file.read_bytes()[:100])
    # ... and no finished file.
    cache_file.unlink()

    dataset = datasets.load("binary_mnist", tmp_path)

    assert len(amat_reads) == 6
    np.testing.assert_array_equal(dataset.x_val.reshape(-1, 784), written["val"])


def test_an_interrupted_write_leaves_no_cache_file(tmp_path, monkeypatch):
    write_binarized_mnist(tmp_path)

    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        datasets.load("binary_mnist", tmp_path)

    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unwritable_cache_only_warns(tmp_path, monkeypatch):
    written = write_binarized_mnist(tmp_path)
    (tmp_path / "not-a-directory").write_text("")
    monkeypatch.setenv("ECHO_CACHE_DIR", str(tmp_path / "not-a-directory"))

    with pytest.warns(UserWarning, match="Could not write the dataset cache"):
        dataset = datasets.load("binary_mnist", tmp_path)

    np.testing.assert_array_equal(dataset.x_test.reshape(-1, 784), written["test"])


def test_cache_directory_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("ECHO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "echo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "echo"


# --- damaged and wrong input files -----------------------------------------------------------


def amat_text(rows) -> str:
    return "".join(" ".join(map(str, row)) + "\n" for row in rows)


def valid_rows(n: int) -> list[list[int]]:
    return [[k % 2] * 784 for k in range(n)]


@pytest.mark.parametrize(
    "text, expected",
    [
        (amat_text(valid_rows(1) + [[0] * 783] + valid_rows(2)), "line 2 has 783 values, expected 784"),
        (amat_text(valid_rows(4))[:-100], "line 4 has 734 values, expected 784"),
        (amat_text([[0] * 5 + [2] + [0] * 778] + valid_rows(3)), "line 1 holds the value '2'"),
        (amat_text(valid_rows(2) + [[0.5] + [0] * 783] + valid_rows(1)), "line 3 holds the value '0.5'"),
        (amat_text(valid_rows(1) + [[10] + [0] * 783] + valid_rows(2)), "line 2 holds the value '10'"),
        (amat_text(valid_rows(3)), "holds 3 rows, expected 4"),
        (amat_text(valid_rows(5)), "holds 5 rows, expected 4"),
        ("", "is empty"),
    ],
    ids=["short-row", "truncated", "two", "fraction", "glued", "few-rows", "many-rows", "empty"],
)
def test_bad_amat_files_are_reported(tmp_path, text, expected):
    write_binarized_mnist(tmp_path, suffix=".amat")
    bad = tmp_path / "binarized_mnist_train.amat"
    bad.write_text(text)

    with pytest.raises(DatasetError) as error:
        datasets.load("binary_mnist", tmp_path)

    assert str(bad) in str(error.value) and expected in str(error.value)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda data: data[: len(data) // 2], "failed to decompress"),
        (lambda data: data[:10] + bytes(255 - b for b in data[10:40]) + data[40:], "failed to decompress"),
        (lambda data: gzip.decompress(data), "failed to decompress"),
    ],
    ids=["truncated", "corrupted", "not-gzipped"],
)
def test_bad_gzip_files_are_reported(tmp_path, damage, expected):
    write_binarized_mnist(tmp_path)
    bad = tmp_path / "binarized_mnist_valid.amat.gz"
    bad.write_bytes(damage(bad.read_bytes()))

    with pytest.raises(DatasetError) as error:
        datasets.load("binary_mnist", tmp_path)

    assert str(bad) in str(error.value) and expected in str(error.value)


def rewrite_idx(path: Path, transform) -> None:
    path.write_bytes(gzip.compress(transform(gzip.decompress(path.read_bytes()))))


@pytest.mark.parametrize(
    "file, transform, expected",
    [
        ("train-images-idx3-ubyte.gz", lambda d: b"\x00\x00\x08\x01" + d[4:], "magic number 0x00000801, expected 0x00000803"),
        ("train-labels-idx1-ubyte.gz", lambda d: b"\x00\x00\x0d\x01" + d[4:], "magic number 0x00000d01"),
        ("train-images-idx3-ubyte.gz", lambda d: d[:-1], "but the file has"),
        ("t10k-images-idx3-ubyte.gz", lambda d: d + b"\x00" * 784, "but the file has"),
        ("t10k-labels-idx1-ubyte.gz", lambda d: d[:5], "shorter than an IDX header"),
        ("t10k-labels-idx1-ubyte.gz", lambda d: d[:4] + (2).to_bytes(4, "big") + d[8:10], "holds 2 labels but"),
        ("train-labels-idx1-ubyte.gz", lambda d: d[:-1] + b"\x0c", "holds the label 12"),
        (
            "t10k-images-idx3-ubyte.gz",
            lambda d: idx_bytes(np.zeros((IDX_TEST, 27, 27), np.uint8)),
            "items of shape (27, 27), expected (28, 28)",
        ),
    ],
    ids=["images-magic", "labels-magic", "truncated", "too-long", "short-header", "count-mismatch", "label", "shape"],
)
def test_bad_idx_files_are_reported(tmp_path, file, transform, expected):
    write_idx_set(tmp_path / "fmnist")
    bad = tmp_path / "fmnist" / file
    rewrite_idx(bad, transform)

    with pytest.raises(DatasetError) as error:
        datasets.load("fmnist", tmp_path)

    assert expected in str(error.value)
    assert str(tmp_path / "fmnist" / file.split("-")[0]) in str(error.value)


def test_an_idx_file_with_the_wrong_number_of_images_is_reported(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "fmnist")
    monkeypatch.setitem(registry.EXPECTED_COUNTS, "train-images-idx3-ubyte", IDX_TRAIN + 1)

    with pytest.raises(DatasetError, match=f"holds {IDX_TRAIN} images, expected {IDX_TRAIN + 1}"):
        datasets.load("fmnist", tmp_path)


@pytest.mark.parametrize(
    "replace, expected",
    [
        ({"testtargetchar": None}, "lacks the key(s) testtargetchar"),
        ({"data": np.zeros((783, CHARDATA_TRAIN))}, "'data' has shape (783, 4)"),
        ({"testdata": np.full((784, CHARDATA_TEST), 1.5)}, "'testdata' holds values outside [0, 1]"),
        ({"target": np.zeros((3, CHARDATA_TRAIN))}, "one-hot alphabets"),
        ({"testtargetchar": np.array([[1.0]])}, "'testtargetchar' should hold 2 character numbers"),
        ({"data": np.zeros((784, CHARDATA_TRAIN + 1)), "target": np.eye(5)[:3]}, "'target' has shape"),
    ],
    ids=["missing-key", "shape", "range", "target", "characters", "target-columns"],
)
def test_bad_chardata_files_are_reported(tmp_path, replace, expected):
    write_chardata(tmp_path / "chardata.mat", **replace)

    with pytest.raises(DatasetError) as error:
        datasets.load("omniglot", tmp_path)

    assert str(tmp_path / "chardata.mat") in str(error.value) and expected in str(error.value)


def test_a_chardata_file_with_the_wrong_number_of_images_is_reported(tmp_path):
    data = np.zeros((784, CHARDATA_TRAIN + 1))
    target = np.zeros((3, CHARDATA_TRAIN + 1))
    target[0] = 1
    write_chardata(tmp_path / "chardata.mat", data=data, target=target, targetchar=np.ones((1, CHARDATA_TRAIN + 1)))

    with pytest.raises(DatasetError, match=f"holds {CHARDATA_TRAIN + 1} images in 'data', expected {CHARDATA_TRAIN}"):
        datasets.load("omniglot", tmp_path)


def test_a_file_that_is_not_a_mat_file_is_reported(tmp_path):
    (tmp_path / "chardata.mat").write_bytes(b"MATLAB 5.0 MAT-file, but then nothing useful" * 3)

    with pytest.raises(DatasetError, match="is not a readable MATLAB .mat file"):
        datasets.load("omniglot", tmp_path)


@pytest.mark.parametrize(
    "entries, expected",
    [
        ({"r/A/c/1.png": b"\x89PNG\r\n\x1a\n but not really"}, "r/A/c/1.png is not a valid PNG image"),
        ({"r/A/c/1.png": png(np.zeros((28, 28), np.uint8))}, "r/A/c/1.png is 28x28 pixels, expected Omniglot's 105x105"),
        ({"r/A/1.png": png(BLANK)}, "Omniglot images must be at <root>/<alphabet>/<character>/<image>.png"),
        ({"r/readme.txt": b"hello"}, "contains no PNG images"),
    ],
    ids=["png", "size", "layout", "empty"],
)
def test_bad_omniglot_archives_are_reported(tmp_path, entries, expected):
    write_omniglot_archives(tmp_path)
    bad = write_zip(tmp_path / "images_evaluation.zip", entries)

    with pytest.raises(DatasetError) as error:
        datasets.load("omniglot", tmp_path)

    assert str(bad) in str(error.value) and expected in str(error.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"not a zip file at all",
        lambda data: data.replace(png(CORNER)[40:80], bytes(255 - b for b in png(CORNER)[40:80])),
    ],
    ids=["truncated", "garbage", "crc"],
)
def test_damaged_zip_files_are_reported(tmp_path, damage):
    write_omniglot_archives(tmp_path)
    bad = tmp_path / "images_background.zip"
    bad.write_bytes(damage(bad.read_bytes()))

    with pytest.raises(DatasetError) as error:
        datasets.load("omniglot", tmp_path)

    assert str(bad) in str(error.value)


def test_dataset_rejects_arrays_of_the_wrong_shape():
    good = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(DatasetError, match="x_test"):
        Dataset(name="d", x_train=good, x_test=np.zeros((2, 28, 28), np.float32), source="s")
    with pytest.raises(DatasetError, match="y_train"):
        Dataset(name="d", x_train=good, x_test=good, y_train=np.zeros(3, np.int64), source="s")
    with pytest.raises(DatasetError, match="has no 'val' split"):
        Dataset(name="d", x_train=good, x_test=good, source="s").split("val")


# --- command line ----------------------------------------------------------------------------


def test_info_lists_what_is_available_locally_without_tfds(tmp_path, capsys, isolated):
    write_binarized_mnist(tmp_path / "binarized_mnist")
    write_idx_set(tmp_path / "fashion-mnist")

    assert main(["info", "--data-dir", str(tmp_path)]) == 0

    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["binary_mnist"].startswith("available (train 4, val 3, test 2) from binarized MNIST")
    assert lines["fmnist"].startswith(f"available (train {IDX_TRAIN - IDX_VAL}, val {IDX_VAL}, test {IDX_TEST})")
    assert lines["binary_fmnist"].startswith("available")
    assert lines["mnist"] == "not found locally (would try TensorFlow Datasets 'mnist')"
    assert lines["omniglot"] == "not found locally (would try TensorFlow Datasets 'omniglot')"
    assert isolated == []


def test_info_reports_damaged_files_and_fails(tmp_path, capsys):
    write_binarized_mnist(tmp_path, suffix=".amat")
    (tmp_path / "binarized_mnist_test.amat").write_text("0 1 2\n")

    assert main(["info", "--data-dir", str(tmp_path)]) == 1

    out = capsys.readouterr().out
    assert "binary_mnist: found in" in out and "unusable" in out and "holds the value '2'" in out
    assert "fmnist: not found locally" in out


def test_show_writes_a_grid_of_images(tmp_path, capsys):
    import tensorflow as tf

    write_omniglot_archives(tmp_path)
    out = tmp_path / "grid.png"

    assert main(["show", "omni", "--out", str(out), "--n", "3", "--data-dir", str(tmp_path)]) == 0

    grid = tf.io.decode_png(out.read_bytes()).numpy()[..., 0]
    # 3 images (CORNER, BLANK, ALIGNED): a 2x2 grid of 28x28 tiles with 2-pixel gaps of gray 64.
    assert grid.shape == (62, 62)
    np.testing.assert_array_equal(grid[2:30, 2:30], np.rint(CORNER_28 * 255))
    np.testing.assert_array_equal(grid[2:30, 32:60], 0)
    np.testing.assert_array_equal(grid[32:60, 2:30], np.rint(ALIGNED_28 * 255))
    assert np.all(grid[32:60, 32:60] == 64) and np.all(grid[:2] == 64) and np.all(grid[:, 30:32] == 64)
    assert "wrote 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, code, expected",
    [
        (["show", "cifar", "--out", "x.png"], 2, "invalid choice: 'cifar'"),
        (["show", "omniglot", "--out", "x.png", "--n", "0"], 2, "--n must be at least 1"),
        (["show", "omniglot", "--out", "x.png", "--n", "7"], 2, "--n 7 exceeds the 4 images"),
        (["show", "omniglot", "--out", "x.png", "--split", "val"], 2, "omniglot has no 'val' split"),
        (["show", "omniglot"], 2, "required: --out"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        ([], 2, "required: command"),
        (["show", "mnist", "--out", "x.png"], 1, "Dataset 'mnist'"),
        (["show", "omniglot", "--out", "no/such/dir/x.png", "--n", "2"], 1, "Cannot write no/such/dir/x.png"),
    ],
)
def test_cli_errors_are_one_line_with_an_exit_code(tmp_path, monkeypatch, capsys, argv, code, expected):
    write_omniglot_archives(tmp_path)
    monkeypatch.setenv("ECHO_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    assert main(argv) == code

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datasets", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_runs_as_a_module(tmp_path):
    # A separate process uses the real standard counts, so the tiny test files are
    # reported as truncated: a data problem, exit code 1, and no TFDS download.
    write_binarized_mnist(tmp_path / "data")
    env = {"ECHO_CACHE_DIR": str(tmp_path / "cache"), "ECHO_DATA_DIR": str(tmp_path / "data")}

    info = run_cli("info", env=env)
    assert info.returncode == 1
    assert "binary_mnist: found in" in info.stdout and "holds 4 rows, expected 50000" in info.stdout

    shown = run_cli("show", "binary_mnist", "--out", str(tmp_path / "x.png"), env=env)
    assert shown.returncode == 1 and shown.stderr.count("\n") == 1
    assert shown.stderr.startswith("error: ") and "holds 4 rows, expected 50000" in shown.stderr

    usage = run_cli("show", env=env)
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "Traceback" not in usage.stderr
