"""Readers for the standard file formats of the datasets.

Every reader validates what it reads and raises DatasetError naming the file
and what is wrong with it; none returns partially parsed data.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import DatasetError
from .images import OMNIGLOT_SIDE, omniglot_ink

AMAT_COLUMNS = 784
CHARDATA_KEYS = ("data", "testdata", "target", "testtarget", "targetchar", "testtargetchar")
IDX_UBYTE = 0x08
PNG_CHUNK = 1024

# Byte classes of a binary .amat file: 0 = not allowed, 1 = a value, 2 = a separator.
_AMAT_CLASS = np.zeros(256, np.uint8)
_AMAT_CLASS[[ord("0"), ord("1")]] = 1
_AMAT_CLASS[[ord(c) for c in " \t\r\n"]] = 2


def read_bytes(path: Path) -> bytes:
    """The contents of ``path``, decompressed if its name ends in ``.gz``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"{path} failed to decompress ({exc}); the file is truncated or corrupted. "
            "Download it again."
        ) from exc


def read_amat(path: Path) -> np.ndarray:
    """A binary .amat matrix (plain or gzipped): uint8 (rows, 784) of 0/1.

    The format is one example per line, 784 values separated by whitespace,
    each value exactly ``0`` or ``1``. Blank lines are ignored.
    """
    data = read_bytes(path)
    chars = np.frombuffer(data, np.uint8)
    kinds = _AMAT_CLASS[chars]
    if kinds.size and kinds.min() == 0:
        raise _amat_value_error(path, data, kinds, int(np.argmin(kinds)))
    is_value = kinds == 1
    glued = is_value[1:] & is_value[:-1]
    if glued.any():
        raise _amat_value_error(path, data, kinds, int(np.argmax(glued)))
    counts = _values_per_line(chars, is_value)
    wrong = np.flatnonzero((counts != 0) & (counts != AMAT_COLUMNS))
    if wrong.size:
        line = int(wrong[0])
        raise DatasetError(
            f"{path}: line {line + 1} has {counts[line]} values, expected {AMAT_COLUMNS} "
            "(28x28 pixels); the file is truncated or corrupted."
        )
    rows = int(np.count_nonzero(counts))
    if rows == 0:
        raise DatasetError(f"{path} is empty; download it again.")
    return (chars[is_value] - ord("0")).reshape(rows, AMAT_COLUMNS)


def _values_per_line(chars: np.ndarray, is_value: np.ndarray) -> np.ndarray:
    """Number of values on each line; a last line without a final newline counts too."""
    starts = np.flatnonzero(chars == ord("\n")) + 1
    starts = np.concatenate(([0], starts[starts < len(chars)])) if len(chars) else starts
    return np.add.reduceat(is_value, starts, dtype=np.int32)


def _amat_value_error(path: Path, data: bytes, kinds: np.ndarray, position: int) -> DatasetError:
    start, end = position, position + 1
    while start > 0 and kinds[start - 1] != 2 and position - start < 20:
        start -= 1
    while end < len(data) and kinds[end] != 2 and end - position < 20:
        end += 1
    line = data.count(b"\n", 0, position) + 1
    token = data[start:end].decode("latin-1")
    return DatasetError(
        f"{path}: line {line} holds the value {token!r}, but a binarized MNIST .amat file "
        "may only hold 0 and 1; the file is corrupted or not the binarized one."
    )


def read_idx(path: Path, item_shape: tuple[int, ...]) -> np.ndarray:
    """An IDX file of unsigned bytes (plain or gzipped): uint8 (N, *item_shape).

    The header is the magic number 0x000008DD (DD = number of dimensions)
    followed by one big-endian uint32 per dimension; the data must fill the
    rest of the file exactly.
    """
    data = read_bytes(path)
    ndim = 1 + len(item_shape)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{path} is only {len(data)} bytes long, shorter than an IDX header ({header} bytes)."
        )
    expected_magic = IDX_UBYTE << 8 | ndim
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DatasetError(
            f"{path} has magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(an IDX file of unsigned bytes with {ndim} dimensions); it is corrupted or "
            "not the right file."
        )
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if dims[1:] != item_shape:
        raise DatasetError(
            f"{path} holds items of shape {dims[1:]}, expected {item_shape}; "
            "it is not the right file."
        )
    size = header + int(np.prod(dims))
    if len(data) != size:
        raise DatasetError(
            f"{path}: its header announces {' x '.join(map(str, dims))} bytes of data "
            f"({size} bytes with the header), but the file has {len(data)} bytes; "
            "it is truncated or corrupted."
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def read_chardata(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Omniglot's 28x28 benchmark file ``chardata.mat`` (Burda et al.'s IWAE repository).

    The file stores images transposed, one per column of ``data`` (784, 24345)
    and ``testdata`` (784, 8070), each column a 28x28 image flattened in
    column-major (Fortran) order, with values in [0, 1] and ink = 1. ``target``
    / ``testtarget`` are one-hot alphabets (50, N); ``targetchar`` /
    ``testtargetchar`` (1, N) number the characters within their alphabet from 1.

    Returns ``{"train": {...}, "test": {...}}`` with ``x`` float32
    (N, 28, 28, 1), ``alphabet`` and ``y``: a global character-class index,
    numbering the (alphabet, character) pairs in order of first appearance,
    train then test.
    """
    mat = _load_mat(path)
    missing = [key for key in CHARDATA_KEYS if key not in mat]
    if missing:
        raise DatasetError(
            f"{path} lacks the key(s) {', '.join(missing)}; chardata.mat must hold "
            f"{', '.join(CHARDATA_KEYS)}. It is not the Omniglot chardata.mat file."
        )
    x = {"train": _chardata_images(path, mat, "data"), "test": _chardata_images(path, mat, "testdata")}
    prefixes = {"train": "", "test": "test"}
    alphabet, pairs = {}, {}
    for split, prefix in prefixes.items():
        alphabet[split] = _chardata_alphabet(path, mat, prefix + "target", len(x[split]))
        character = _chardata_character(path, mat, prefix + "targetchar", len(x[split]))
        pairs[split] = list(zip(alphabet[split].tolist(), character.tolist()))
    y_train, y_test = index_by_first_appearance(pairs["train"], pairs["test"])
    return {
        "train": {"x": x["train"], "y": y_train, "alphabet": alphabet["train"]},
        "test": {"x": x["test"], "y": y_test, "alphabet": alphabet["test"]},
    }


def _load_mat(path: Path) -> dict[str, np.ndarray]:
    # scipy is imported here because only this reader needs it.
    from scipy.io import loadmat

    try:
        return loadmat(path)
    # loadmat raises many types on damaged input (ValueError, struct.error,
    # zlib.error, MatReadError, ...); any of them means the file is unusable.
    except Exception as exc:
        raise DatasetError(f"{path} is not a readable MATLAB .mat file: {exc}") from exc


def _chardata_images(path: Path, mat: dict[str, np.ndarray], key: str) -> np.ndarray:
    data = np.asarray(mat[key])
    if data.ndim != 2 or data.shape[0] != AMAT_COLUMNS or not data.size or data.dtype.kind not in "fiu":
        raise DatasetError(
            f"{path}: '{key}' has shape {data.shape} and dtype {data.dtype}, expected numbers "
            f"of shape (784, N) (one 28x28 image per column)."
        )
    if not np.all(np.isfinite(data)) or data.min() < 0 or data.max() > 1:
        raise DatasetError(f"{path}: '{key}' holds values outside [0, 1]; the file is corrupted.")
    images = data.T.reshape(-1, 28, 28).transpose(0, 2, 1)
    return np.ascontiguousarray(images, dtype=np.float32)[..., None]


def _chardata_alphabet(path: Path, mat: dict[str, np.ndarray], key: str, n: int) -> np.ndarray:
    target = np.asarray(mat[key])
    binary = np.all((target == 0) | (target == 1))
    if target.ndim != 2 or target.shape[1] != n or not binary or not np.all(target.sum(axis=0) == 1):
        raise DatasetError(
            f"{path}: '{key}' has shape {target.shape}, expected one-hot alphabets of shape "
            f"(alphabets, {n})."
        )
    return np.argmax(target, axis=0).astype(np.int64)


def _chardata_character(path: Path, mat: dict[str, np.ndarray], key: str, n: int) -> np.ndarray:
    numbers = np.asarray(mat[key]).ravel()
    if numbers.size != n or not np.all(numbers == np.round(numbers)) or numbers.min() < 1:
        raise DatasetError(
            f"{path}: '{key}' should hold {n} character numbers >= 1, "
            f"found shape {np.shape(mat[key])}."
        )
    return numbers.astype(np.int64) - 1


def index_by_first_appearance(*groups: list) -> list[np.ndarray]:
    """Numbers distinct keys 0, 1, ... in order of first appearance across ``groups``.

    Returns one int64 array per group with the index of each of its keys.
    """
    index: dict = {}
    for group in groups:
        for key in group:
            index.setdefault(key, len(index))
    return [np.array([index[key] for key in group], dtype=np.int64) for group in groups]


@dataclass(frozen=True)
class OmniglotArchive:
    """The drawings of one Omniglot image archive, sorted by path.

    ``x`` is float32 (N, 28, 28, 1) (see images.omniglot_ink); ``alphabets``
    and ``characters`` name each image's folders; ``drawings`` identifies each
    image as (path below the archive root, SHA-256 of its PNG bytes).
    """

    x: np.ndarray
    alphabets: list[str]
    characters: list[tuple[str, str]]
    drawings: list[tuple[str, str]]

    def without(self, other: OmniglotArchive) -> OmniglotArchive:
        """The images of this archive that are not also in ``other`` (same path, same PNG bytes)."""
        theirs = set(other.drawings)
        keep = [k for k, drawing in enumerate(self.drawings) if drawing not in theirs]
        return OmniglotArchive(
            x=self.x[keep],
            alphabets=[self.alphabets[k] for k in keep],
            characters=[self.characters[k] for k in keep],
            drawings=[self.drawings[k] for k in keep],
        )


def read_omniglot_zip(path: Path) -> OmniglotArchive:
    """An archive of the original Omniglot release, e.g. ``images_background.zip``.

    Its drawings are 105x105 1-bit PNGs at ``<root>/<alphabet>/<character>/NNNN_NN.png``
    with black (0) strokes on white (1); they are downsampled to 28x28 with
    ink = 1. Entries that are not PNGs (folders, macOS metadata) are ignored.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(_png_names(path, archive.namelist()))
            pngs = [archive.read(name) for name in names]
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DatasetError(f"{path} is not a valid zip archive ({exc}); download it again.") from exc
    if not names:
        raise DatasetError(f"{path} contains no PNG images; it is not an Omniglot archive.")
    chunks = [slice(i, i + PNG_CHUNK) for i in range(0, len(names), PNG_CHUNK)]
    x = np.concatenate([_decode_drawings(path, names[chunk], pngs[chunk]) for chunk in chunks])
    parts = [PurePosixPath(name).parts for name in names]
    return OmniglotArchive(
        x=x,
        alphabets=[p[1] for p in parts],
        characters=[(p[1], p[2]) for p in parts],
        drawings=[("/".join(p[1:]), hashlib.sha256(png).hexdigest()) for p, png in zip(parts, pngs)],
    )


def _png_names(path: Path, names: list[str]) -> list[str]:
    pngs = []
    for name in names:
        parts = PurePosixPath(name).parts
        if not name.lower().endswith(".png") or parts[0] == "__MACOSX" or parts[-1].startswith("._"):
            continue
        if len(parts) != 4:
            raise DatasetError(
                f"{path} holds {name!r}, but Omniglot images must be at "
                "<root>/<alphabet>/<character>/<image>.png."
            )
        pngs.append(name)
    return pngs


def _decode_drawings(path: Path, names: list[str], pngs: list[bytes]) -> np.ndarray:
    # TensorFlow is imported here, not at module level, because importing it
    # takes seconds and only this reader needs it (to decode PNG).
    import tensorflow as tf

    side = (OMNIGLOT_SIDE, OMNIGLOT_SIDE, 1)
    gray = np.empty((len(names), OMNIGLOT_SIDE, OMNIGLOT_SIDE), np.uint8)
    for k, (name, data) in enumerate(zip(names, pngs)):
        try:
            image = tf.io.decode_png(data, channels=1).numpy()
        except tf.errors.InvalidArgumentError as exc:
            raise DatasetError(f"{path}: {name} is not a valid PNG image ({exc.message}).") from exc
        if image.shape != side:
            raise DatasetError(
                f"{path}: {name} is {image.shape[1]}x{image.shape[0]} pixels, "
                f"expected Omniglot's {OMNIGLOT_SIDE}x{OMNIGLOT_SIDE}."
            )
        gray[k] = image[..., 0]
    return omniglot_ink(gray)
