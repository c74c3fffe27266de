"""The datasets by name: which files hold them, how to read them, how to get them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .dataset import SPLITS, Splits
from .errors import DatasetError
from .images import binarize, from_uint8, omniglot_ink
from .readers import index_by_first_appearance, read_amat, read_chardata, read_idx, read_omniglot_zip

# The last VALIDATION_SIZE examples of the MNIST / Fashion-MNIST training file
# are the validation split.
VALIDATION_SIZE = 10_000

# Fashion-MNIST is binarized once with this seed (its release date) so that
# binary_fmnist is the same on every machine and every run; see binarize_splits.
BINARIZE_SEED = 20170825

# Examples in each standard file; any other count means a truncated file or a
# different file under the standard name.
EXPECTED_COUNTS: dict[str, int] = {
    "binarized_mnist_train.amat": 50_000,
    "binarized_mnist_valid.amat": 10_000,
    "binarized_mnist_test.amat": 10_000,
    "train-images-idx3-ubyte": 60_000,
    "t10k-images-idx3-ubyte": 10_000,
    "chardata.mat:data": 24_345,
    "chardata.mat:testdata": 8_070,
}


@dataclass(frozen=True)
class Parsed:
    """What a reader made of a layout's files.

    ``remark`` is what the dataset's source string should say about the splits
    beyond their sizes ('' if nothing), e.g. that drawings were dropped.
    """

    splits: Splits
    remark: str = ""


@dataclass(frozen=True)
class Layout:
    """One set of files that together hold a dataset, and how to read them.

    ``read`` receives the paths of ``files`` in the same order. With
    ``gzip_ok``, each file may also be present gzipped (name + '.gz').
    """

    description: str
    files: tuple[str, ...]
    read: Callable[[Sequence[Path]], Parsed]
    gzip_ok: bool = False

    def accepted_names(self, file: str) -> tuple[str, ...]:
        """The names under which ``file`` is accepted, in order of preference."""
        return (file, file + ".gz") if self.gzip_ok else (file,)

    def wanted(self) -> str:
        """The files, for messages: 'a.amat[.gz] + b.amat[.gz]'."""
        suffix = "[.gz]" if self.gzip_ok else ""
        return " + ".join(file + suffix for file in self.files)


@dataclass(frozen=True)
class TfdsRecipe:
    """How to turn a TensorFlow Datasets dataset into our splits.

    ``splits`` maps our split names to TFDS split names; ``image`` converts a
    batch of TFDS images of ``image_shape`` to float32 (n, 28, 28, 1) in [0, 1];
    ``labels`` maps our label keys to TFDS feature names.
    """

    name: str
    splits: Mapping[str, str]
    image_shape: tuple[int, ...]
    image: Callable[[np.ndarray], np.ndarray]
    labels: Mapping[str, str]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the loader needs to know about one dataset.

    Data are looked for in each ``subdirs`` entry of a data directory ('' is
    the directory itself), trying ``layouts`` in order. ``finish`` turns what
    a layout or TFDS provides into the final splits (``note`` describes it).
    """

    name: str
    title: str
    subdirs: tuple[str, ...]
    layouts: tuple[Layout, ...]
    tfds: TfdsRecipe
    how_to_get: str
    finish: Callable[[Splits], Splits] = lambda splits: splits
    note: str = ""


def check_count(path: Path, key: str, count: int, what: str) -> None:
    """Raises DatasetError if ``count`` is not EXPECTED_COUNTS[key] (when listed)."""
    expected = EXPECTED_COUNTS.get(key)
    if expected is not None and count != expected:
        raise DatasetError(
            f"{path} holds {count} {what}, expected {expected}; it is truncated "
            "or not the standard file."
        )


def _standard_name(path: Path) -> str:
    return path.name.removesuffix(".gz")


def _read_binarized_mnist(paths: Sequence[Path]) -> Parsed:
    splits = {}
    for split, path in zip(SPLITS, paths):
        values = read_amat(path)
        check_count(path, _standard_name(path), len(values), "rows")
        splits[split] = {"x": values.reshape(-1, 28, 28, 1).astype(np.float32)}
    return Parsed(splits)


def _read_idx_pair(images_path: Path, labels_path: Path) -> dict[str, np.ndarray]:
    images = read_idx(images_path, (28, 28))
    labels = read_idx(labels_path, ())
    if len(labels) != len(images):
        raise DatasetError(
            f"{labels_path} holds {len(labels)} labels but {images_path} holds "
            f"{len(images)} images; one of them is truncated or they do not belong together."
        )
    check_count(images_path, _standard_name(images_path), len(images), "images")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{labels_path} holds the label {labels.max()}; labels must be 0..9.")
    return {"x": from_uint8(images)[..., None], "y": labels.astype(np.int64)}


def _read_idx_files(paths: Sequence[Path]) -> Parsed:
    train_images, train_labels, test_images, test_labels = paths
    return Parsed(
        {
            "train": _read_idx_pair(train_images, train_labels),
            "test": _read_idx_pair(test_images, test_labels),
        }
    )


def _read_chardata(paths: Sequence[Path]) -> Parsed:
    (path,) = paths
    splits = read_chardata(path)
    for split, key in (("train", "data"), ("test", "testdata")):
        check_count(path, f"chardata.mat:{key}", len(splits[split]["x"]), f"images in '{key}'")
    return Parsed(splits)


def _read_omniglot_archives(paths: Sequence[Path]) -> Parsed:
    """The training and test archives, less the test drawings that are also training drawings.

    The archives may overlap (the small ones share two alphabets); a test
    drawing is dropped if the training archive holds the same PNG bytes at
    the same path below its root.
    """
    train, all_test = (read_omniglot_zip(path) for path in paths)
    test = all_test.without(train)
    if len(test.x) == 0:
        raise DatasetError(
            f"Every drawing in {paths[1]} is also in {paths[0]}, which leaves no test images; "
            "one of the two files is not the archive its name says."
        )
    y_train, y_test = index_by_first_appearance(train.characters, test.characters)
    alphabet_train, alphabet_test = index_by_first_appearance(train.alphabets, test.alphabets)
    splits = {
        "train": {"x": train.x, "y": y_train, "alphabet": alphabet_train},
        "test": {"x": test.x, "y": y_test, "alphabet": alphabet_test},
    }
    return Parsed(splits, _dropped_remark(len(all_test.x) - len(test.x)))


def _dropped_remark(dropped: int) -> str:
    """Says how many test drawings were dropped as identical to training drawings ('' if none)."""
    if dropped == 1:
        return "1 test drawing identical to a training drawing was dropped"
    return f"{dropped} test drawings identical to training drawings were dropped" if dropped else ""


def split_off_validation(splits: Splits) -> Splits:
    """Makes the last VALIDATION_SIZE training examples the validation split."""
    train = splits["train"]
    n = len(train["x"])
    if n <= VALIDATION_SIZE:
        raise DatasetError(
            f"The training split has only {n} examples; at least {VALIDATION_SIZE + 1} are "
            f"needed to hold out the last {VALIDATION_SIZE} for validation."
        )
    cut = n - VALIDATION_SIZE
    return {
        **splits,
        "train": {key: array[:cut] for key, array in train.items()},
        "val": {key: array[cut:] for key, array in train.items()},
    }


def binarize_splits(splits: Splits) -> Splits:
    """Binarizes every split once with BINARIZE_SEED, deterministically.

    One numpy.random.default_rng(BINARIZE_SEED) generator serves the splits in
    the fixed order train, val, test (see images.binarize); labels are kept.
    """
    rng = np.random.default_rng(BINARIZE_SEED)
    return {
        split: {**splits[split], "x": binarize(splits[split]["x"], rng)}
        for split in SPLITS
        if split in splits
    }


def _gray_omniglot(images: np.ndarray) -> np.ndarray:
    return omniglot_ink(images.mean(axis=-1))


_BINARIZED_MNIST = DatasetSpec(
    name="binary_mnist",
    title="binarized MNIST (Larochelle & Murray 2011)",
    subdirs=("binarized_mnist", ""),
    layouts=(
        Layout(
            "binarized MNIST .amat files",
            ("binarized_mnist_train.amat", "binarized_mnist_valid.amat", "binarized_mnist_test.amat"),
            _read_binarized_mnist,
            gzip_ok=True,
        ),
    ),
    tfds=TfdsRecipe(
        "binarized_mnist",
        {"train": "train", "val": "validation", "test": "test"},
        (28, 28, 1),
        lambda images: images.astype(np.float32),
        {},
    ),
    how_to_get=(
        "Download binarized_mnist_train.amat, binarized_mnist_valid.amat and "
        "binarized_mnist_test.amat (Larochelle & Murray 2011) from "
        "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/ and put them, "
        "plain or gzipped, in <data dir>/binarized_mnist/."
    ),
)

_OMNIGLOT = DatasetSpec(
    name="omniglot",
    title="Omniglot (Lake et al. 2015)",
    subdirs=("omniglot", ""),
    layouts=(
        Layout("Omniglot chardata.mat (28x28, Burda et al.)", ("chardata.mat",), _read_chardata),
        Layout(
            "Omniglot image archives",
            ("images_background.zip", "images_evaluation.zip"),
            _read_omniglot_archives,
        ),
        Layout(
            "Omniglot small image archives",
            ("images_background_small1.zip", "images_background_small2.zip"),
            _read_omniglot_archives,
        ),
    ),
    tfds=TfdsRecipe(
        "omniglot",
        {"train": "train", "test": "test"},
        (105, 105, 3),
        _gray_omniglot,
        {"y": "label", "alphabet": "alphabet"},
    ),
    how_to_get=(
        "Download chardata.mat from https://github.com/yburda/iwae/tree/master/datasets/OMNIGLOT "
        "(28x28, the usual benchmark split), or images_background.zip and images_evaluation.zip "
        "from https://github.com/brendenlake/omniglot/tree/master/python (Lake et al. 2015), and "
        "put them in <data dir>/omniglot/."
    ),
)

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

_FASHION_MNIST = DatasetSpec(
    name="fmnist",
    title="Fashion-MNIST (Xiao et al. 2017)",
    subdirs=("fashion-mnist", "fashion_mnist", "fmnist", ""),
    layouts=(Layout("Fashion-MNIST IDX files", _IDX_FILES, _read_idx_files, gzip_ok=True),),
    tfds=TfdsRecipe(
        "fashion_mnist", {"train": "train", "test": "test"}, (28, 28, 1), from_uint8, {"y": "label"}
    ),
    how_to_get=(
        "Install the Debian package: sudo apt-get install dataset-fashion-mnist (it puts the files "
        "in /usr/share/datasets/fashion-mnist/), or download the four *-ubyte.gz files from "
        "https://github.com/zalandoresearch/fashion-mnist into <data dir>/fashion-mnist/."
    ),
    finish=split_off_validation,
)

_MNIST = DatasetSpec(
    name="mnist",
    title="MNIST, grayscale (LeCun et al. 1998)",
    subdirs=("mnist",),
    layouts=(Layout("MNIST IDX files", _IDX_FILES, _read_idx_files, gzip_ok=True),),
    tfds=replace(_FASHION_MNIST.tfds, name="mnist"),
    how_to_get=(
        "Download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (e.g. from "
        "https://storage.googleapis.com/cvdf-datasets/mnist/) into <data dir>/mnist/."
    ),
    finish=split_off_validation,
)

_BINARY_FASHION_MNIST = replace(
    _FASHION_MNIST,
    name="binary_fmnist",
    title="Fashion-MNIST, binarized once with a fixed seed",
    finish=lambda splits: binarize_splits(split_off_validation(splits)),
    note=f"binarized with numpy default_rng({BINARIZE_SEED})",
)

REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (_BINARIZED_MNIST, _OMNIGLOT, _FASHION_MNIST, _BINARY_FASHION_MNIST, _MNIST)
}
ALIASES = {"omni": "omniglot"}
NAMES: tuple[str, ...] = (*REGISTRY, *ALIASES)


def spec_for(name: str) -> DatasetSpec:
    """The DatasetSpec of a dataset name or alias; DatasetError listing valid names if unknown."""
    spec = REGISTRY.get(ALIASES.get(name, name)) if isinstance(name, str) else None
    if spec is None:
        aliases = ", ".join(f"{alias} = {target}" for alias, target in ALIASES.items())
        raise DatasetError(
            f"Unknown dataset {name!r}. Valid names: {', '.join(REGISTRY)} (aliases: {aliases})."
        )
    return spec
