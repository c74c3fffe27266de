"""Pixel-level conversions shared by the readers, the TFDS fallback and the CLI."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

OMNIGLOT_SIDE = 105
SIDE = 28


def from_uint8(pixels: np.ndarray) -> np.ndarray:
    """Maps uint8 intensities 0..255 to float32 values in [0, 1] (value / 255).

    Every float32 image that :func:`to_uint8_exact` accepts is reproduced
    bit for bit, which is what lets the cache store such images as bytes.
    """
    return pixels.astype(np.float32) / np.float32(255)


def to_uint8_exact(x: np.ndarray) -> np.ndarray | None:
    """The uint8 array ``u`` with ``from_uint8(u) == x`` exactly, or None if there is none."""
    if x.dtype != np.float32 or x.size == 0 or x.min() < 0 or x.max() > 1:
        return None
    pixels = np.rint(x * np.float32(255)).astype(np.uint8)
    return pixels if np.array_equal(from_uint8(pixels), x) else None


@lru_cache(maxsize=None)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix: row i averages input pixels over output pixel i's extent.

    Output pixel i covers the input interval [i s, (i + 1) s) with s = n_in / n_out;
    each input pixel contributes the length of its overlap with that interval,
    divided by s. Rows sum to 1.
    """
    scale = n_in / n_out
    edges = np.arange(n_out + 1) * scale
    pixel = np.arange(n_in)
    low = np.maximum(edges[:-1, None], pixel[None, :])
    high = np.minimum(edges[1:, None], pixel[None, :] + 1)
    return (np.clip(high - low, 0, None) / scale).astype(np.float32)


def area_downsample(images: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Area-averages square images (N, S, S) to (N, side, side), float32.

    This is the exact area average (what tf.image.resize(method='area') computes),
    also for non-integer ratios such as Omniglot's 105 -> 28.
    """
    weights = _area_weights(images.shape[-1], side)
    return weights @ images.astype(np.float32) @ weights.T


def omniglot_ink(gray: np.ndarray) -> np.ndarray:
    """Omniglot drawings (N, 105, 105) uint8, black strokes on white, to model input.

    Returns float32 (N, 28, 28, 1): ink = 1 - gray / 255, area-averaged to 28x28,
    so ink = 1 and background = 0 as in chardata.mat.
    """
    ink = 1.0 - from_uint8(gray)
    return np.clip(area_downsample(ink), 0.0, 1.0)[..., None]


def binarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stochastic binarization: pixel = 1 with probability x, else 0.

    Draws u = rng.random(x.shape, dtype=np.float32) and returns (u < x) as
    float32, so a pixel of 0 never becomes ink and a pixel of 1 always does.
    """
    uniform = rng.random(x.shape, dtype=np.float32)
    return (uniform < x).astype(np.float32)


def tile_grid(images: np.ndarray, gap: int = 2, columns: int | None = None) -> np.ndarray:
    """Tiles images (N, H, W, 1) in [0, 1] into one uint8 image (rows, cols, 1).

    The grid has ``columns`` images a row, or is as square as possible; ink = 1
    is drawn white, background = 0 black, and the ``gap``-pixel separators dark gray.
    """
    n, height, width = images.shape[:3]
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (height + gap) + gap, cols * (width + gap) + gap, 1), 64, np.uint8)
    pixels = np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8)
    for k in range(n):
        top = gap + (k // cols) * (height + gap)
        left = gap + (k % cols) * (width + gap)
        grid[top : top + height, left : left + width] = pixels[k]
    return grid
