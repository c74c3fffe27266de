"""Echo noise: a drop-in alternative to Gaussian noise with an exact mutual information.

Brekelmans, Moyer, Galstyan & Ver Steeg, "Exact Rate-Distortion in Autoencoders via
Echo Noise", NeurIPS 2019 (arXiv:1904.07199).

This file is self-contained (TensorFlow and NumPy only) so that it can be copied into
any project::

    import echo_noise
    z = echo_noise.echo_sample([z_mean, z_log_scale])   # instead of z_mean + exp(z_log_scale) * N(0, 1)
    rate = echo_noise.echo_loss([z_log_scale])           # I(X;Z) per latent dimension, in nats

The channel (paper, Eq. 1 and Sec. 2) is

    z = f(x) + S(x) ε,      ε = Σ_{l=0}^{L-1} ( Π_{k<l} S(x⁽ᵏ⁾) ) f(x⁽ˡ⁾),

where x⁽⁰⁾ … x⁽ᴸ⁻¹⁾ are *other* examples of the same batch and S(x) = clip · s(x) is
diagonal with 0 < s(x) ≤ 1. Because ε is distributed as z itself and is independent of
x, the mutual information is exact (paper, Eq. 6)::

    I(X;Z) = -E_x log |det S(x)| = -Σ_j E_x [log clip + log s_j(x)]   (nats per example)

The infinite sum is truncated after L terms; `clip` is chosen so that the neglected tail,
at most M·clip^L / (1 - clip) for |f(x)| ≤ M, is below float32 resolution (2⁻²³).
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np
import tensorflow as tf

TensorLike = Union[tf.Tensor, np.ndarray, float]

FLOAT32_RESOLUTION = 2.0 ** -23
# An explicitly given clip is accepted while its tail bound stays within twice the target.
# The reference implementation publishes clip = 0.8359 for 99 terms, 3e-5 above the exact
# root 0.835866 (a 0.4% larger tail); this tolerance accepts such rounded values and still
# rejects any clip that is really too large for the number of terms available.
TAIL_TOLERANCE = 2.0 * FLOAT32_RESOLUTION
DEFAULT_CLIP = 0.8359  # echo_clip(99) rounded to 4 digits: batch 100, d_max 100, |f(x)| <= 1


def echo_terms(batch_size: int, d_max: int, replace: bool = False, pop: bool = True) -> int:
    """Number of echo terms L actually used for a batch of `batch_size` examples.

    Without replacement each example draws its neighbours from the other examples, so
    L = min(d_max, batch_size - 1) (or min(d_max, batch_size) when `pop=False` lets an
    example echo itself). With replacement L = d_max.
    """
    if replace:
        return int(d_max)
    return int(min(d_max, batch_size - 1 if pop else batch_size))


def echo_tail_bound(clip: float, n_terms: int, fx_bound: float = 1.0) -> float:
    """Upper bound M·clip^L / (1 - clip) on the truncated tail of the echo sum.

    With |f(x)| ≤ M and s(x) ≤ 1, the terms l ≥ L of ε sum to at most Σ_{l≥L} M·clip^l.
    """
    if not 0.0 < clip < 1.0:
        raise ValueError(f"clip must lie in (0, 1), got {clip}")
    return float(fx_bound * clip ** n_terms / (1.0 - clip))


def echo_clip(n_terms: int, fx_bound: float = 1.0, precision: float = FLOAT32_RESOLUTION) -> float:
    """Largest clip r in (0, 1) with M·r^L / (1 - r) ≤ `precision`.

    Args:
        n_terms: L, the number of echo terms actually used (see `echo_terms`); for batch
            100 and d_max 100 without replacement L = 99 and r = 0.835866.
        fx_bound: M, a bound on |f(x)| (1 for tanh activations, `fx_clip` otherwise).
        precision: the target bound on the neglected tail (default 2⁻²³).

    The left-hand side is increasing in r, so bisection on
    g(r) = log M + L log r - log(1 - r) - log precision converges to the root; the
    returned value always satisfies the bound.
    """
    if int(n_terms) != n_terms or n_terms < 1:
        raise ValueError(f"echo noise needs at least one echo term, got n_terms={n_terms}")
    if not fx_bound > 0:
        raise ValueError(f"fx_bound must be positive, got {fx_bound}")

    def excess(r: float) -> float:
        return math.log(fx_bound) + n_terms * math.log(r) - math.log1p(-r) - math.log(precision)

    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= 0.0 or excess(mid) <= 0.0:
            lo = mid
        else:
            hi = mid
    if lo <= 0.0:
        raise ValueError(f"no clip in (0, 1) bounds the tail by {precision} with M={fx_bound}, L={n_terms}")
    return lo


def _split_inputs(inputs) -> tuple[tf.Tensor, tf.Tensor]:
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != 2:
            raise ValueError(f"echo_sample expects inputs [f(x), s(x)], got a list of {len(inputs)}")
        return tf.convert_to_tensor(inputs[0]), tf.convert_to_tensor(inputs[1])
    raise ValueError("echo_sample expects inputs [f(x), s(x)] as a list or tuple of two tensors")


def _log_s(sx: tf.Tensor, calc_log: bool, plus_sx: bool) -> tf.Tensor:
    """log s(x) from the encoder's scale head.

    calc_log=True: the head is log s(x) (`plus_sx=True`, e.g. a log-sigmoid) or -log s(x)
    (`plus_sx=False`, e.g. a softplus). calc_log=False: the head is s(x) in (0, 1] itself.
    """
    if calc_log:
        return sx if plus_sx else -sx
    tiny = np.finfo(sx.dtype.as_numpy_dtype).tiny
    return tf.math.log(tf.maximum(sx, tiny))


def _seeds(seed: tf.Tensor | None, n: int) -> list:
    """n independent stateless seeds [2] split from `seed`, or n Nones (stateful draws)."""
    if seed is None:
        return [None] * n
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n))


def _shuffle(values: tf.Tensor, seed: tf.Tensor | None) -> tf.Tensor:
    """A uniformly random permutation of `values`: stateful, or a function of `seed`."""
    if seed is None:
        return tf.random.shuffle(values)
    return tf.random.experimental.stateless_shuffle(values, seed)


def _circle_draw(batch_size, n_terms, pop: bool = True, seed: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """One draw of the neighbour sampling scheme without replacement: a uniformly random
    permutation `order` [B] that places the batch on a circle, and L distinct random
    `offsets` [L] in 1 … B-1 (0 … B-1 when `pop=False`).

    The example at circle position p (example order[p]) takes as its neighbours the
    examples at positions p + o_0, …, p + o_{L-1} (mod B). Given p, the permutation maps
    the other positions to the other examples uniformly, so each example's neighbours are
    a uniformly random ordered sample without replacement of the other examples, exactly
    as independent per-example shuffles would give, at O(B·L) cost instead of O(B²).
    Examples share the permutation and offsets, so the noises of different examples are
    drawn jointly, which does not change the distribution of any one example's noise.
    `seed` (see `echo_sample`) makes the draw a function of it.
    """
    batch_size = tf.convert_to_tensor(batch_size, dtype=tf.int32)
    order_seed, offsets_seed = _seeds(seed, 2)
    order = _shuffle(tf.range(batch_size), order_seed)
    offsets = _shuffle(tf.range(1 if pop else 0, batch_size), offsets_seed)[:n_terms]
    return order, offsets


def _neighbour_indices(batch_size, n_terms, replace: bool, pop: bool, seed: tf.Tensor | None = None) -> tf.Tensor:
    """Indices [B, L] of the examples whose f(x) form each example's echo sum.

    `batch_size` and `n_terms` may be Python ints or scalar tensors. Without replacement:
    the circle scheme of `_circle_draw`, example order[p] taking order[p + o_l mod B]. With
    replacement: independent uniform draws among the other examples (all examples when
    `pop=False`). `seed` (see `echo_sample`) makes the draw a function of it.
    """
    batch_size = tf.convert_to_tensor(batch_size, dtype=tf.int32)
    if replace:
        shape, low = tf.stack([batch_size, n_terms]), 1 if pop else 0
        if seed is None:
            offsets = tf.random.uniform(shape, minval=low, maxval=batch_size, dtype=tf.int32)
        else:
            offsets = tf.random.stateless_uniform(shape, tf.cast(seed, tf.int64), minval=low, maxval=batch_size, dtype=tf.int32)
        return (tf.range(batch_size)[:, None] + offsets) % batch_size
    return tf.transpose(_circle_neighbours(*_circle_draw(batch_size, n_terms, pop, seed)))


def _circle_neighbours(order: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
    """[L, B]: entry [l, i] = order[position[i] + o_l mod B], the l-th neighbour of example i
    for the circle draw (order, offsets) of `_circle_draw`."""
    position = tf.math.invert_permutation(order)
    return tf.gather(order, (position[None, :] + offsets[:, None]) % tf.shape(order)[0])


def permute_neighbor_indices(
    batch_size: int, d_max: int, replace: bool = False, pop: bool = True, seed: tf.Tensor | None = None
) -> tf.Tensor:
    """Neighbour indices [batch_size, L] for a batch whose size is known in Python.

    Each row i holds L = `echo_terms(batch_size, d_max, replace, pop)` indices of other
    examples (row i never contains i when `pop=True`; `pop=False` lets an example echo
    itself, which breaks the independence of ε and x), drawn anew on every call (or as a
    function of `seed`, see `echo_sample`). The static shape is fully defined. See
    `_circle_draw` for the sampling scheme.
    """
    if int(batch_size) != batch_size or batch_size < 2:
        raise ValueError(f"echo noise needs a batch of at least 2 examples, got {batch_size}")
    n_terms = echo_terms(batch_size, d_max, replace, pop)
    return tf.ensure_shape(
        _neighbour_indices(batch_size, n_terms, replace, pop, seed), [batch_size, n_terms]
    )


def indices_without_replacement(batch_size, d_max: int, pop: bool = True, seed: tf.Tensor | None = None) -> tf.Tensor:
    """Neighbour indices [B, L] sampled without replacement, for a batch size that may be
    a scalar tensor (an unknown batch dimension, e.g. inside `keras.Model.fit`).

    L = min(d_max, B - 1) (min(d_max, B) when `pop=False`); `seed` as in `echo_sample`.
    """
    batch_size = tf.convert_to_tensor(batch_size, dtype=tf.int32)
    n_terms = tf.minimum(d_max, batch_size - 1 if pop else batch_size)
    return _neighbour_indices(batch_size, n_terms, replace=False, pop=pop, seed=seed)


def _check_tail(batch_size, d_max: int, replace: bool, clip: float, fx_bound: float,
                declared_batch: int | None = None):
    """Refuse a batch that gives too few echo terms for `clip` (inexact noise).

    Returns a no-op for batch sizes known in Python (the check then happens right here,
    raising ValueError) and an assertion op for dynamic ones. `declared_batch`, the
    `batch` that a computed clip was designed for, makes the message name it when the
    batch has another size.
    """
    needed = _terms_needed(clip, fx_bound)
    advice = (
        f"with clip={clip:.6g} and |f(x)| <= {fx_bound:g} echo noise needs at least {needed} "
        f"echo terms (tail bound {TAIL_TOLERANCE:.3g}); the batch gives min(d_max={d_max}, B-1) terms. "
        "Use a larger batch, or compute a smaller clip with echo_clip(L) for the L you have "
        "(and pass the same clip to echo_loss), or replace=True"
    )
    if isinstance(batch_size, int):
        if batch_size < 2 or echo_terms(batch_size, d_max, replace) < needed:
            if declared_batch is not None and declared_batch != batch_size:
                advice = (
                    f"the clip was computed for batch={declared_batch}. If {batch_size} is your batch size, "
                    f"pass batch={batch_size} (and the matching clip to echo_loss). In general, " + advice
                )
            raise ValueError(f"echo_sample: a batch of {batch_size} examples is too small: {advice}")
        return None
    # With replacement a batch of 2 already gives d_max terms, but a batch of 1 gives none.
    terms = tf.where(batch_size < 2, 0, d_max if replace else tf.minimum(d_max, batch_size - 1))
    return tf.debugging.assert_greater_equal(
        terms, needed, message=f"echo_sample: the batch is too small: {advice}"
    )


def _terms_needed(clip: float, fx_bound: float) -> int:
    """Smallest L whose tail bound M·clip^L/(1-clip) is within TAIL_TOLERANCE."""
    if not 0.0 < clip < 1.0:
        raise ValueError(f"echo_sample: clip must lie in (0, 1), got {clip}")
    needed = math.log(TAIL_TOLERANCE * (1.0 - clip) / fx_bound) / math.log(clip)
    return max(1, math.ceil(needed - 1e-9))


def echo_sample(
    inputs: Sequence[TensorLike],
    clip: float | None = None,
    d_max: int = 100,
    batch: int = 100,
    multiplicative: bool = False,
    echo_mc: bool = False,
    replace: bool = False,
    fx_clip: float | None = None,
    plus_sx: bool = True,
    calc_log: bool = True,
    set_batch: bool = True,
    return_noise: bool = False,
    seed: TensorLike | None = None,
) -> tf.Tensor:
    """Sample z = f(x) + S(x)·ε with echo noise ε built from the other examples of the batch.

    Args:
        inputs: [f(x), s(x)], two tensors of the same shape [B, z] or [B, h, w, c]. With
            `calc_log=True`, s(x) is given in log space: log s(x) when `plus_sx=True` (e.g.
            a log-sigmoid head), -log s(x) when `plus_sx=False` (e.g. a softplus head).
            With `calc_log=False` it is s(x) itself, in (0, 1].
        clip: the factor in S(x) = clip·s(x). None computes it: `echo_clip(L, M)` with
            L = `echo_terms(batch, d_max, replace)` and M = `fx_clip` or 1, i.e. the largest
            clip whose tail bound is below 2⁻²³ for the configured batch size (0.835866 for
            the defaults, which `echo_loss`'s default 0.8359 matches). Pass the same clip
            to `echo_loss`.
        d_max: the largest number of echo terms L per example.
        batch: the batch size the clip is designed for (used when clip is None) and, with
            `set_batch=True`, the batch size required when the input's batch dimension is
            unknown while tracing.
        multiplicative: return exp(f(x) + S(x)·ε) instead of f(x) + S(x)·ε.
        echo_mc: subtract the batch mean of f(x) before sampling (z and ε then both use
            the centred f(x), so ε is still distributed as z).
        replace: draw the neighbours uniformly with replacement among the other examples
            (L = d_max) instead of without replacement (L = min(d_max, B - 1)).
        fx_clip: clip f(x) to [-fx_clip, fx_clip] (and use M = fx_clip for the default clip).
        plus_sx, calc_log: how s(x) is given, see `inputs`.
        set_batch: when the batch dimension is unknown while tracing (e.g. inside a
            Keras `Lambda`), require it to be `batch` (the reference implementation
            declared it so): a batch of another size, such as a last partial batch, raises
            InvalidArgumentError naming both sizes and what to do, before any op of the
            sample runs. The output's batch dimension stays the input's (unknown while
            tracing). A batch dimension known while tracing is used as it is, only
            checked against the clip (below). With False the batch size is taken from the
            data at run time, so any batch large enough for the clip works.
        return_noise: return ε instead of z.
        seed: None draws the neighbours with TensorFlow's stateful random ops (seeded by
            `tf.random.set_seed`; inside a `tf.function` their streams start where it is
            traced). A stateless seed, two integers [2], makes the draw a function of it
            (`tf.random.experimental.stateless_shuffle`): pass a new one on every call, e.g.
            `keras.random.SeedGenerator.next()` or `tf.random.Generator.make_seeds()[:, 0]`,
            and a traced training step is reseeded by setting the generator's state,
            without a new trace.

    A batch too small for the clip is refused, never silently given inexact noise: the
    number of terms it provides, min(d_max, B - 1), must make the tail bound
    M·clip^L/(1 - clip) at most 2⁻²² (ValueError when B is known when tracing, naming
    `batch` too when the clip was computed for another size; InvalidArgumentError at run
    time otherwise). The noise is recomputed from fresh
    random neighbours on every call; the sum runs in log space (exclusive cumulative sums
    of log S), never as a product of many small numbers. Memory O(B·L·z); time O(B·L·z)
    gathers and exponentials, plus O(B·L^1.5·z) multiply-adds in small triangular matrix
    products (`_exclusive_prefix_sums`), which CPUs run faster than a cumulative sum.

    Returns:
        A tensor shaped like f(x).
    """
    fx, sx = _split_inputs(inputs)
    fx_bound = float(fx_clip) if fx_clip is not None else 1.0
    clip_for_batch = clip is None
    if clip is None:
        clip = echo_clip(echo_terms(batch, d_max, replace), fx_bound)

    static_batch = fx.shape[0]
    if static_batch is not None:
        # Known while tracing: refused here (ValueError) if too small for the clip.
        declared = batch if clip_for_batch else None
        _check_tail(int(static_batch), d_max, replace, clip, fx_bound, declared_batch=declared)
        batch_size, checks = int(static_batch), []
    elif set_batch:
        # The declared batch must suit the clip (ValueError now); the data's batch must
        # then equal it, which the assertion checks before any op of the sample runs.
        _check_tail(int(batch), d_max, replace, clip, fx_bound)
        batch_size, checks = None, [_assert_batch(fx, batch)]
    else:
        batch_size, checks = None, [_check_tail(tf.shape(fx)[0], d_max, replace, clip, fx_bound)]

    # Every op of the sample, constants included, is created under the checks, and none is
    # built from the declared size: the output's batch dimension stays the data's (unknown
    # while tracing). Declared as `batch`, it would let TensorFlow build the gradients of
    # the ops after echo_sample (a loss against 37 targets) and fold the shapes of the ops
    # before it from the constant 100, and those ops would fail first, with TensorFlow's
    # "Incompatible shapes: [37,28,28,1] vs. [100,28,28,1]" instead of this check's message.
    with tf.control_dependencies(checks):
        sx = tf.cast(sx, fx.dtype)
        if batch_size is None:
            batch_size = tf.shape(fx)[0]
        if fx_clip is not None:
            fx = tf.clip_by_value(fx, -fx_bound, fx_bound)
        log_S = math.log(clip) + _log_s(sx, calc_log, plus_sx)
        if echo_mc:
            fx = fx - tf.reduce_mean(fx, axis=0, keepdims=True)
        noise = _noise(fx, log_S, batch_size, d_max, replace, seed)
        if return_noise:
            out = noise
        else:
            z = fx + tf.exp(log_S) * noise
            out = tf.exp(z) if multiplicative else z
        return out


def _noise(fx: tf.Tensor, log_S: tf.Tensor, batch_size, d_max: int, replace: bool, seed: TensorLike | None) -> tf.Tensor:
    """Echo noise ε, shaped like fx, from f(x) and log S(x) [B, ...], for a batch already
    checked to give enough echo terms. `batch_size` is B, a Python int when known while
    tracing (the shapes of the draw are then static) or a scalar tensor."""
    flat_fx = tf.reshape(fx, [tf.shape(fx)[0], -1])
    # S(x) = 0 (log S = -inf) ends the echo sum; a finite floor keeps the triangular
    # products of `_exclusive_prefix_sums` free of 0·inf and gives the same weights.
    flat_log_S = tf.maximum(tf.reshape(log_S, tf.shape(flat_fx)), fx.dtype.min)
    if replace:
        neighbours = tf.transpose(_neighbour_indices(batch_size, d_max, replace=True, pop=True, seed=seed))
        blocks, block = _scan_blocks(d_max)
        noise = _echo_sum(*(_neighbour_terms(values, neighbours, blocks * block) for values in (flat_fx, flat_log_S)),
                          blocks, block)
    else:
        n_terms = echo_terms(batch_size, d_max) if isinstance(batch_size, int) else tf.minimum(d_max, batch_size - 1)
        noise = _noise_on_circle(flat_fx, flat_log_S, *_circle_draw(batch_size, n_terms, seed=seed))
    return tf.ensure_shape(tf.reshape(noise, tf.shape(fx)), fx.shape)


def _scan_blocks(n_terms) -> tuple:
    """(blocks, block): the L echo terms are summed in `blocks` blocks of `block` ≈ √L
    terms, blocks·block ≥ L (see `_exclusive_prefix_sums`); Python ints for an int L,
    scalar tensors for a tensor."""
    if isinstance(n_terms, int):
        block = math.isqrt(n_terms - 1) + 1 if n_terms > 1 else 1
        return -(-n_terms // block), block
    block = tf.cast(tf.math.ceil(tf.sqrt(tf.cast(n_terms, tf.float32))), tf.int32)
    return (n_terms + block - 1) // block, block


def _neighbour_terms(values: tf.Tensor, neighbours: tf.Tensor, n_slabs, sources: tf.Tensor | None = None) -> tf.Tensor:
    """[n_slabs, B, D]: slab l holds values[neighbours[l]] for l < L (neighbours [L, B])
    and zeros beyond, which add nothing to the echo sum.

    `sources` [L, B], when each slab of `neighbours` is a permutation of the batch, gives
    for every example j the row l·B + i of the flattened terms where j appears as
    neighbour l of example i; the gradient is then a gather and a sum over l, where
    tf.gather's own gradient is a scatter-add (unsorted_segment_sum) that costs several
    times more on CPU.
    """
    index = tf.pad(neighbours, [[0, n_slabs - tf.shape(neighbours)[0]], [0, 0]], constant_values=tf.shape(values)[0])

    def gather(values):
        return tf.gather(tf.concat([values, tf.zeros_like(values[:1])], axis=0), index)

    if sources is None:
        return gather(values)

    @tf.custom_gradient
    def gather_permutations(values):
        def gradient(upstream):
            flat = tf.reshape(upstream, [-1, tf.shape(upstream)[-1]])
            return tf.reduce_sum(tf.gather(flat, sources), axis=0)

        return gather(values), gradient

    return gather_permutations(values)


def _noise_on_circle(fx: tf.Tensor, log_S: tf.Tensor, order: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
    """ε [B, D] from f(x) and log S(x) [B, D] for the circle draw (order [B], offsets [L]) of
    `_circle_draw`: example order[p] echoes order[p + o_0], order[p + o_1], … (mod B).

    The l-th neighbours of all examples are a permutation of the batch (a rotation of the
    circle), so each example is the l-th neighbour of exactly one other, whose index is
    known: that makes the gradient of the gathers a gather (`_neighbour_terms`).
    """
    n_terms = offsets.shape[0] if offsets.shape[0] is not None else tf.shape(offsets)[0]
    blocks, block = _scan_blocks(n_terms)
    batch_size = tf.shape(fx)[0]
    position = tf.math.invert_permutation(order)
    neighbours = _circle_neighbours(order, offsets)
    # Example j is the l-th neighbour of order[position[j] - o_l].
    sources = tf.range(n_terms)[:, None] * batch_size + tf.gather(order, (position[None, :] - offsets[:, None]) % batch_size)
    f_terms, log_S_terms = (_neighbour_terms(values, neighbours, blocks * block, sources) for values in (fx, log_S))
    return _echo_sum(f_terms, log_S_terms, blocks, block)


def _echo_sum(f_terms: tf.Tensor, log_S_terms: tf.Tensor, blocks, block) -> tf.Tensor:
    """ε = Σ_l ( Π_{k<l} S⁽ᵏ⁾ ) f⁽ˡ⁾ [B, D] from the neighbours' f(x) and log S(x), each
    [blocks·block, B, D], term l of every example in slab l (zeros past the last term).
    The products are exp of exclusive sums of log S, never products of many small numbers.

    The gradient is written out: with weights W_l = Π_{k<l} S⁽ᵏ⁾ and upstream g,
    ∂/∂f⁽ˡ⁾ = W_l·g and ∂/∂log S⁽ᵏ⁾ = Σ_{l>k} W_l f⁽ˡ⁾·g (exclusive suffix sums), which
    saves the broadcasts and products that differentiating the forward ops would add.
    """
    shape = tf.shape(f_terms)
    flat_shape = tf.stack([shape[0], -1])

    @tf.custom_gradient
    def echo_sum(f_terms, log_S_terms):
        weights = tf.exp(_exclusive_prefix_sums(log_S_terms, blocks, block))
        weighted = weights * f_terms
        def gradient(upstream):
            return weights * upstream, _exclusive_prefix_sums(weighted * upstream, blocks, block, reverse=True)

        return tf.reduce_sum(weighted, axis=0), gradient

    noise = echo_sum(tf.reshape(f_terms, flat_shape), tf.reshape(log_S_terms, flat_shape))
    return tf.reshape(noise, shape[1:])


def _exclusive_prefix_sums(x: tf.Tensor, blocks, block, reverse: bool = False) -> tf.Tensor:
    """Σ_{k<l} x[k] for every l (Σ_{k>l} with `reverse`, its adjoint): the exclusive
    cumulative sum over axis 0 of x [blocks·block, N].

    Two triangular matrix products: the exclusive sums within each block of `block` rows,
    plus the exclusive sums of the block totals. With block ≈ √L this is several times
    faster on CPU than tf.cumsum along the leading axis, and each output adds at most
    about 2√L terms, so it rounds no worse than a sequential sum.
    """
    grouped = tf.reshape(x, [blocks, block, -1])
    within, between = _strictly_lower(block, x.dtype), _strictly_lower(blocks, x.dtype)
    if reverse:
        within, between = tf.transpose(within), tf.transpose(between)
    sums = tf.matmul(within[None], grouped) + tf.matmul(between, tf.reduce_sum(grouped, axis=1))[:, None, :]
    return tf.reshape(sums, tf.shape(x))


def _strictly_lower(n, dtype: tf.DType) -> tf.Tensor:
    """The n×n matrix with ones below the diagonal and zeros elsewhere."""
    ones = tf.ones(tf.stack([n, n]), dtype)
    return tf.linalg.band_part(ones, -1, 0) - tf.linalg.band_part(ones, 0, 0)


def _assert_batch(fx: tf.Tensor, batch: int) -> tf.Operation:
    """An assertion op: the batch dimension of fx [B, ...] equals the declared `batch`.

    Its InvalidArgumentError reads "assertion failed: [echo_sample: a batch of] [37]
    [examples, but set_batch=True declared batch=100 ...]" and says what to do.
    """
    size = tf.shape(fx)[0]
    return tf.debugging.Assert(
        tf.equal(size, batch),
        [
            "echo_sample: a batch of",
            size,
            f"examples, but set_batch=True declared batch={batch} (the batch size the clip is computed "
            f"for). If your batches have that many examples, pass batch=<that number> (and give echo_loss "
            f"the matching clip, echo_clip(echo_terms(batch, d_max))); or pass set_batch=False to take the batch size "
            f"from the data (then every batch must give enough echo terms for the clip, which "
            f"replace=True ensures for any batch of 2 or more). A last, partial batch (a number of "
            f"examples that is not a multiple of the batch size) must be dropped, e.g. with "
            f"tf.data's batch(..., drop_remainder=True)",
        ],
        summarize=1,
    )


def echo_loss(
    inputs,
    clip: float = DEFAULT_CLIP,
    calc_log: bool = True,
    plus_sx: bool = True,
    multiplicative: bool = False,
) -> tf.Tensor:
    """Exact rate of the echo channel, per latent dimension: -(log clip + log s(x)), in nats.

    Summed over the latent dimensions this is -log|det S(x)|, whose mean over examples is
    I(X;Z) (paper, Eq. 6), in nats per example.

    Args:
        inputs: s(x) as a tensor or as a list whose last element is s(x) (e.g.
            `[z_log_scale]` or `[f(x), s(x)]`), given as for `echo_sample`.
        clip: the clip `echo_sample` used (its default for batch 100 and d_max 100).
        calc_log, plus_sx: how s(x) is given, as for `echo_sample`.
        multiplicative: accepted for symmetry with `echo_sample`; exp is invertible and
            elementwise, so I(X;Z) is the same for multiplicative noise.

    Returns:
        A tensor shaped like s(x); each entry is ≥ 0 when s(x) ≤ 1.
    """
    del multiplicative  # the rate does not depend on it, see the docstring
    sx = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs
    sx = tf.convert_to_tensor(sx)
    if not 0.0 < clip < 1.0:
        raise ValueError(f"echo_loss: clip must lie in (0, 1), got {clip}")
    return -(tf.constant(math.log(clip), dtype=sx.dtype) + _log_s(sx, calc_log, plus_sx))
