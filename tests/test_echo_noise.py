"""Echo noise (`echo_noise.py`) against closed forms and the echo property.

Reference values come from the paper's definitions, not from the code: for a linear
encoder f(x) = a·x with x ~ N(0, 1) and a constant scale S = clip·s, the echo output is
Gaussian with Var z = a²/(1 - S²), Var(z | x) = S²·a²/(1 - S²), and
I(X;Z) = ½ log(Var z / Var(z|x)) = -log S.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import echo_noise
import model_utils.activations


def _constant_scale_batch(batch, dims, a, log_s, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, dims))
    return a * x, np.full((batch, dims), log_s, dtype=dtype)


# ---- the clip -------------------------------------------------------------------------


def test_echo_clip_solves_the_tail_bound_for_the_reference_defaults():
    r = echo_noise.echo_clip(99)
    assert 99 * math.log(r) - math.log(1 - r) <= -23 * math.log(2)
    r_above = r + 1e-9
    assert 99 * math.log(r_above) - math.log(1 - r_above) > -23 * math.log(2)
    # The reference implementation's published values, rounded to 4 digits.
    assert round(r, 4) == 0.8359
    assert round(echo_noise.echo_clip(99, fx_bound=10.0), 4) == 0.8175


def test_echo_clip_grows_with_the_number_of_terms_and_shrinks_with_the_bound():
    clips = [echo_noise.echo_clip(n) for n in (1, 10, 49, 99, 500)]
    assert clips == sorted(clips)
    assert echo_noise.echo_clip(99, fx_bound=10.0) < echo_noise.echo_clip(99)
    assert echo_noise.echo_clip(1) == pytest.approx(2.0 ** -23 / (1 + 2.0 ** -23), rel=1e-6)


def test_echo_terms_counts_the_other_examples_of_the_batch():
    assert echo_noise.echo_terms(100, 100) == 99
    assert echo_noise.echo_terms(1000, 100) == 100
    assert echo_noise.echo_terms(100, 100, pop=False) == 100
    assert echo_noise.echo_terms(10, 100, replace=True) == 100


def test_default_echo_loss_clip_matches_default_echo_sample_clip():
    defaults = echo_noise.echo_clip(echo_noise.echo_terms(100, 100))
    assert defaults == pytest.approx(echo_noise.DEFAULT_CLIP, abs=5e-5)


# ---- exactness on the linear-Gaussian case --------------------------------------------


@pytest.mark.parametrize("log_s", [math.log(0.5), math.log(0.95)])
def test_linear_gaussian_variances_and_rate_match_the_closed_form(log_s):
    a, batch, dims = 1.7, 1000, 64
    fx, sx = _constant_scale_batch(batch, dims, a, log_s, seed=1)
    tf.random.set_seed(1)
    z = echo_noise.echo_sample([fx, sx], batch=batch).numpy()
    S = echo_noise.echo_clip(99) * math.exp(log_s)

    var_z, var_z_given_x = z.var(), (z - fx).var()
    assert var_z == pytest.approx(a**2 / (1 - S**2), rel=0.04)
    assert var_z_given_x == pytest.approx(S**2 * a**2 / (1 - S**2), rel=0.04)

    rate = echo_noise.echo_loss([sx], clip=echo_noise.echo_clip(99)).numpy()
    assert rate == pytest.approx(np.full_like(rate, -math.log(S)))
    gaussian_mi = 0.5 * math.log(var_z / var_z_given_x)
    assert rate[0, 0] == pytest.approx(gaussian_mi, abs=0.03)


def test_noise_is_the_exact_finite_echo_sum_for_a_tiny_batch():
    # B = 3 and L = 2: example i's noise is f_j + S_j f_k for the two others (j, k) in some order.
    clip = echo_noise.echo_clip(2)
    fx = np.array([[1.0], [2.0], [3.0]])
    s = np.array([[0.9], [0.5], [0.25]])
    S = clip * s
    for _ in range(5):
        noise = echo_noise.echo_sample([fx, np.log(s)], clip=clip, d_max=2, return_noise=True).numpy()
        for i in range(3):
            j, k = [m for m in range(3) if m != i]
            candidates = [fx[j, 0] + S[j, 0] * fx[k, 0], fx[k, 0] + S[k, 0] * fx[j, 0]]
            assert min(abs(noise[i, 0] - c) for c in candidates) < 1e-12


def test_output_is_f_plus_scale_times_noise_and_multiplicative_is_its_exp():
    fx, sx = _constant_scale_batch(100, 5, 0.8, math.log(0.7), seed=2)
    clip = echo_noise.echo_clip(99)
    tf.random.set_seed(7)
    z = echo_noise.echo_sample([fx, sx]).numpy()
    tf.random.set_seed(7)
    noise = echo_noise.echo_sample([fx, sx], return_noise=True).numpy()
    tf.random.set_seed(7)
    z_mult = echo_noise.echo_sample([fx, sx], multiplicative=True).numpy()
    # float64, the echo sum in log space against the product: atol for a z near zero.
    np.testing.assert_allclose(z, fx + clip * np.exp(sx) * noise, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z_mult, np.exp(z), rtol=1e-12)


# ---- the echo property ----------------------------------------------------------------


def test_noise_has_the_distribution_of_z_for_a_nonlinear_encoder():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 32))
    fx = np.tanh(2.0 * x)
    sx = np.log(1.0 / (1.0 + np.exp(-x)))  # s(x) = sigmoid(x), depends on x
    tf.random.set_seed(3)
    z = echo_noise.echo_sample([fx, sx], batch=2000).numpy()
    tf.random.set_seed(4)
    noise = echo_noise.echo_sample([fx, sx], batch=2000, return_noise=True).numpy()
    assert noise.mean() == pytest.approx(z.mean(), abs=0.01)
    assert noise.var() == pytest.approx(z.var(), rel=0.03)
    kurtosis = lambda v: ((v - v.mean()) ** 4).mean() / v.var() ** 2  # noqa: E731
    assert kurtosis(noise) == pytest.approx(kurtosis(z), rel=0.05)


@pytest.mark.parametrize("replace", [False, True])
def test_noise_of_an_example_does_not_depend_on_that_example(replace):
    batch, dims = 9, 3
    clip = echo_noise.echo_clip(8)
    fx = tf.constant(np.random.default_rng(4).uniform(-1, 1, (batch, dims)))
    sx = tf.constant(np.log(np.random.default_rng(5).uniform(0.2, 1.0, (batch, dims))))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([fx, sx])
        noise = echo_noise.echo_sample([fx, sx], clip=clip, d_max=8, replace=replace, return_noise=True)
    d_fx = tape.jacobian(noise, fx).numpy()  # [B, z, B, z]
    d_sx = tape.jacobian(noise, sx).numpy()
    for i in range(batch):
        assert np.all(d_fx[i, :, i, :] == 0) and np.all(d_sx[i, :, i, :] == 0)
    off_diagonal = np.abs(d_fx).sum() - sum(np.abs(d_fx[i, :, i, :]).sum() for i in range(batch))
    assert off_diagonal > 0


# ---- neighbours -----------------------------------------------------------------------


def test_neighbours_exclude_self_are_distinct_and_change_between_calls():
    first = echo_noise.permute_neighbor_indices(50, 20).numpy()
    second = echo_noise.permute_neighbor_indices(50, 20).numpy()
    assert first.shape == (50, 20)
    for i, row in enumerate(first):
        assert i not in row and len(set(row)) == 20 and row.min() >= 0 and row.max() < 50
    assert not np.array_equal(first, second)


def _assert_third_neighbour_uniform(hundred_draws, batch: int, draws: int = 3000) -> None:
    """Chi-square test that position 2 of each example's row, over `draws` draws made 100
    at a time by `hundred_draws(k)` ([100, batch, L] for k = 0, 1, ...), is uniform over
    the other examples."""
    counts = np.zeros((batch, batch))
    for k in range(draws // 100):
        indices = hundred_draws(k).numpy()
        for i in range(batch):
            counts[i] += np.bincount(indices[:, i, 2], minlength=batch)
    expected = draws / (batch - 1)
    for i in range(batch):
        assert counts[i, i] == 0
        others = np.delete(counts[i], i)
        chi2 = ((others - expected) ** 2 / expected).sum()
        assert chi2 < 25  # 4 degrees of freedom: p < 1e-4 for a correct sampler


def test_each_position_of_a_row_is_uniform_over_the_other_examples():
    batch = 6
    hundred_draws = tf.function(lambda: tf.stack([echo_noise.indices_without_replacement(batch, 5) for _ in range(100)]))
    _assert_third_neighbour_uniform(lambda k: hundred_draws(), batch)


def test_seeded_draws_are_uniform_over_the_other_examples_too():
    batch = 6

    @tf.function
    def hundred_draws(k):
        return tf.stack([echo_noise.indices_without_replacement(batch, 5, seed=tf.stack([k, i])) for i in range(100)])

    _assert_third_neighbour_uniform(lambda k: hundred_draws(tf.constant(k, tf.int64)), batch)


@pytest.mark.parametrize("replace", [False, True])
def test_seeded_neighbours_are_a_function_of_the_seed(replace):
    draw = lambda seed: echo_noise.permute_neighbor_indices(50, 20, replace=replace, seed=seed).numpy()  # noqa: E731
    first = draw(tf.constant([3, 4]))
    assert np.array_equal(first, draw(np.array([3, 4])))
    assert not np.array_equal(first, draw(tf.constant([3, 5])))
    for i, row in enumerate(first):
        assert i not in row and row.min() >= 0 and row.max() < 50
        assert replace or len(set(row)) == 20


def test_a_seed_generator_reseeds_a_traced_echo_sample_without_a_new_trace():
    fx, log_s = (tf.constant(a, tf.float32) for a in _fixed_inputs(100, 8, seed=3))
    generator = keras.random.SeedGenerator(0)
    traces = []

    @tf.function
    def sample():
        traces.append(1)
        return echo_noise.echo_sample([fx, log_s], seed=generator.next())

    generator.state.assign([11, 0])
    first, second = sample().numpy(), sample().numpy()
    generator.state.assign([11, 0])
    again = sample().numpy()
    assert len(traces) == 1
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, again)


def test_dynamic_indices_give_min_of_d_max_and_batch_minus_one_terms():
    sample = tf.function(lambda b: echo_noise.indices_without_replacement(b, 10))
    assert sample(tf.constant(5)).shape == (5, 4)
    assert sample(tf.constant(30)).shape == (30, 10)


def test_replacement_draws_never_pick_the_example_itself():
    indices = echo_noise._neighbour_indices(7, 400, replace=True, pop=True).numpy()
    assert indices.shape == (7, 400)
    for i in range(7):
        assert i not in indices[i]
        assert set(indices[i]) == set(range(7)) - {i}


# ---- the echo sum against its previous formulation -------------------------------------


def _gather_cumsum_noise(fx, log_S, neighbours):
    """The echo sum as echo_noise computed it before it worked in circle order: gather the
    neighbours [B, L], exclusive cumsum of log S along the terms, weighted sum of f."""
    log_weights = tf.cumsum(tf.gather(log_S, neighbours), axis=1, exclusive=True)
    return tf.reduce_sum(tf.exp(log_weights) * tf.gather(fx, neighbours), axis=1)


def _loop_noise(fx, log_S, neighbours):
    """ε_i = Σ_l Π_{k<l} S[n_ik] f[n_il], term by term in float64."""
    S, noise = np.exp(log_S), np.zeros_like(fx)
    for i, row in enumerate(neighbours):
        weight = np.ones(fx.shape[1])
        for j in row:
            noise[i] += weight * fx[j]
            weight = weight * S[j]
    return noise


def _fixed_inputs(batch, dims, seed):
    rng = np.random.default_rng(seed)
    fx = np.tanh(rng.normal(size=(batch, dims)))
    log_S = math.log(echo_noise.echo_clip(batch - 1)) + np.log(rng.uniform(0.05, 1.0, (batch, dims)))
    return fx, log_S


# float32 against float64: both sum at most ~100 terms of size <= 1, so the error is a few
# tens of float32 ulps of the largest term (~1), i.e. an absolute 1e-5 covers it.
FLOAT32_SUM = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch, d_max", [(100, 100), (37, 20), (12, 11), (2, 1)])
def test_circle_order_sum_equals_the_gather_cumsum_sum_for_the_same_neighbours(batch, d_max):
    fx, log_S = _fixed_inputs(batch, 32, seed=batch)
    tf.random.set_seed(batch)
    order, offsets = echo_noise._circle_draw(batch, min(d_max, batch - 1))
    neighbours = tf.gather(order, (tf.math.invert_permutation(order)[:, None] + offsets[None, :]) % batch).numpy()
    expected = _loop_noise(fx, log_S, neighbours)
    np.testing.assert_allclose(_gather_cumsum_noise(fx, log_S, neighbours).numpy(), expected, rtol=1e-12, atol=1e-12)

    f32 = lambda a: tf.constant(a, tf.float32)  # noqa: E731
    noise = echo_noise._noise_on_circle(f32(fx), f32(log_S), order, offsets).numpy()
    np.testing.assert_allclose(noise, expected, **FLOAT32_SUM)
    np.testing.assert_allclose(echo_noise._noise_on_circle(fx, log_S, order, offsets).numpy(), expected,
                               rtol=1e-12, atol=1e-12)


def test_circle_order_gradients_equal_the_gather_cumsum_gradients():
    fx, log_S = (tf.Variable(a) for a in _fixed_inputs(100, 32, seed=7))
    tf.random.set_seed(7)
    order, offsets = echo_noise._circle_draw(100, 99)
    neighbours = tf.gather(order, (tf.math.invert_permutation(order)[:, None] + offsets[None, :]) % 100)
    upstream = tf.constant(np.random.default_rng(8).normal(size=(100, 32)))
    gradients = []
    for noise_of in (lambda f, s: echo_noise._noise_on_circle(f, s, order, offsets),
                     lambda f, s: _gather_cumsum_noise(f, s, neighbours)):
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(upstream * noise_of(fx, log_S))
        gradients.append([tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, [fx, log_S])])
    for new, previous in zip(*gradients):
        np.testing.assert_allclose(new, previous, rtol=1e-12, atol=1e-12)


def test_replacement_sum_equals_the_term_by_term_sum():
    fx, log_S = _fixed_inputs(9, 4, seed=9)
    neighbours = echo_noise._neighbour_indices(9, 30, replace=True, pop=True)
    blocks, block = echo_noise._scan_blocks(30)
    terms = [echo_noise._neighbour_terms(v, tf.transpose(neighbours), blocks * block) for v in (fx, log_S)]
    noise = echo_noise._echo_sum(*terms, blocks, block).numpy()
    np.testing.assert_allclose(noise, _loop_noise(fx, log_S, neighbours.numpy()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_terms", [1, 2, 3, 10, 97, 99, 100, 101])
def test_blocked_exclusive_prefix_sums_equal_cumsum(n_terms):
    x = np.random.default_rng(n_terms).normal(size=(n_terms, 5))
    blocks, block = echo_noise._scan_blocks(n_terms)
    assert blocks * block >= n_terms and block * block >= n_terms and (blocks - 1) * block < n_terms
    padded = np.concatenate([x, np.zeros((blocks * block - n_terms, 5))])
    expected = np.cumsum(padded, axis=0) - padded
    np.testing.assert_allclose(echo_noise._exclusive_prefix_sums(padded, blocks, block).numpy(), expected,
                               rtol=1e-12, atol=1e-12)
    dynamic = tf.function(lambda v: echo_noise._exclusive_prefix_sums(v, *echo_noise._scan_blocks(tf.shape(v)[0])),
                          input_signature=[tf.TensorSpec([None, 5], tf.float64)])
    np.testing.assert_allclose(dynamic(padded).numpy(), expected, rtol=1e-12, atol=1e-12)
    suffix = np.cumsum(padded[::-1], axis=0)[::-1] - padded  # Σ_{k>l} x[k], the adjoint
    np.testing.assert_allclose(echo_noise._exclusive_prefix_sums(padded, blocks, block, reverse=True).numpy(), suffix,
                               rtol=1e-12, atol=1e-12)


# ---- shapes, batch sizes, numerics, gradients ------------------------------------------


def test_rank_four_latents_keep_their_shape_and_independence_from_self():
    fx = tf.constant(np.random.default_rng(6).uniform(-1, 1, (12, 2, 2, 3)))
    sx = tf.constant(np.log(np.full((12, 2, 2, 3), 0.5)))
    clip = echo_noise.echo_clip(11)
    with tf.GradientTape() as tape:
        tape.watch(fx)
        noise = echo_noise.echo_sample([fx, sx], clip=clip, d_max=11, return_noise=True)
    assert noise.shape == (12, 2, 2, 3)
    jacobian = tape.jacobian(noise, fx).numpy()
    for i in range(12):
        assert np.all(jacobian[i, ..., i, :, :, :] == 0)


@pytest.mark.parametrize("batch", [37, 101])
def test_odd_batch_sizes_with_the_matching_clip(batch):
    fx, sx = _constant_scale_batch(batch, 4, 0.5, math.log(0.8), seed=batch)
    z = echo_noise.echo_sample([np.tanh(fx), sx], batch=batch)
    assert z.shape == (batch, 4) and np.all(np.isfinite(z))


def test_replacement_reproduces_the_closed_form_variance():
    a, log_s = 1.0, math.log(0.6)
    fx, sx = _constant_scale_batch(500, 64, a, log_s, seed=8)
    tf.random.set_seed(8)
    z = echo_noise.echo_sample([fx, sx], replace=True, batch=500).numpy()
    S = echo_noise.echo_clip(100) * 0.6
    assert z.var() == pytest.approx(a**2 / (1 - S**2), rel=0.05)


@pytest.mark.parametrize("log_s", [-80.0, -1e-8])
def test_results_are_finite_for_scales_near_zero_and_one(log_s):
    fx = tf.Variable(np.random.default_rng(9).uniform(-1, 1, (100, 8)).astype(np.float32))
    sx = tf.Variable(np.full((100, 8), log_s, dtype=np.float32))
    with tf.GradientTape() as tape:
        z = echo_noise.echo_sample([fx, sx])
        rate = tf.reduce_sum(echo_noise.echo_loss([sx]))
        total = tf.reduce_sum(z**2) + rate
    grads = tape.gradient(total, [fx, sx])
    assert np.all(np.isfinite(z)) and np.isfinite(rate.numpy())
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_gradients_reach_both_heads():
    fx = tf.Variable(np.random.default_rng(10).uniform(-1, 1, (100, 4)))
    sx = tf.Variable(np.log(np.full((100, 4), 0.7)))
    with tf.GradientTape() as tape:
        z = echo_noise.echo_sample([fx, sx])
        total = tf.reduce_sum(z**2)
    d_fx, d_sx = tape.gradient(total, [fx, sx])
    assert np.abs(d_fx.numpy()).min() > 0 and np.abs(d_sx.numpy()).sum() > 0


def test_fx_clip_bounds_the_mean_and_echo_mc_centres_it():
    fx = np.linspace(-30, 30, 100)[:, None] * np.ones((1, 2)) + 5.0
    sx = np.log(np.full((100, 2), 0.5))
    tf.random.set_seed(11)
    clipped = echo_noise.echo_sample([fx, sx], fx_clip=10.0)
    tf.random.set_seed(11)
    noise = echo_noise.echo_sample([fx, sx], fx_clip=10.0, return_noise=True)
    clip = echo_noise.echo_clip(99, fx_bound=10.0)
    np.testing.assert_allclose(clipped - clip * 0.5 * noise, np.clip(fx, -10, 10), rtol=1e-12, atol=1e-12)

    fx_small = np.tanh(fx / 10)
    tf.random.set_seed(12)
    centred = echo_noise.echo_sample([fx_small, sx], echo_mc=True)
    tf.random.set_seed(12)
    centred_noise = echo_noise.echo_sample([fx_small, sx], echo_mc=True, return_noise=True)
    expected_mean_part = fx_small - fx_small.mean(axis=0)
    np.testing.assert_allclose(
        centred - echo_noise.echo_clip(99) * 0.5 * centred_noise, expected_mean_part, atol=1e-12
    )


def test_echo_loss_accepts_every_parameterisation_of_the_scale():
    s = np.array([[0.2, 0.9], [0.5, 1.0]])
    expected = -(math.log(0.8) + np.log(s))
    np.testing.assert_allclose(echo_noise.echo_loss([np.log(s)], clip=0.8), expected, rtol=1e-12)
    np.testing.assert_allclose(echo_noise.echo_loss(-np.log(s), clip=0.8, plus_sx=False), expected, rtol=1e-12)
    np.testing.assert_allclose(echo_noise.echo_loss([s], clip=0.8, calc_log=False), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="clip"):
        echo_noise.echo_loss([s], clip=1.2)


# ---- batches too small, graph modes ----------------------------------------------------


def test_a_batch_too_small_for_the_clip_is_refused_eagerly():
    fx, sx = _constant_scale_batch(50, 4, 0.5, -0.5, seed=13)
    with pytest.raises(ValueError, match="too small"):
        echo_noise.echo_sample([fx, sx])
    # The documented way out: the clip for the terms the batch provides, here 49.
    z = echo_noise.echo_sample([fx, sx], clip=echo_noise.echo_clip(49))
    assert z.shape == (50, 4)


def test_a_single_example_is_refused_even_with_replacement():
    fx, sx = _constant_scale_batch(1, 4, 0.5, -0.5, seed=17)
    with pytest.raises(ValueError, match="too small"):
        echo_noise.echo_sample([fx, sx], replace=True)
    spec = tf.TensorSpec([None, 4], tf.float64)
    sample = tf.function(
        lambda f, s: echo_noise.echo_sample([f, s], replace=True, set_batch=False), input_signature=[spec, spec]
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="too small"):
        sample(fx, sx)


def test_a_batch_too_small_is_refused_at_run_time_for_an_unknown_batch_dimension():
    spec = tf.TensorSpec([None, 4], tf.float64)
    sample = tf.function(
        lambda f, s: echo_noise.echo_sample([f, s], set_batch=False), input_signature=[spec, spec]
    )
    fx, sx = _constant_scale_batch(120, 4, 0.5, -0.5, seed=14)
    assert sample(fx, sx).shape == (120, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too small"):
        sample(fx[:60], sx[:60])


def test_set_batch_requires_the_declared_batch():
    spec = tf.TensorSpec([None, 4], tf.float64)
    sample = tf.function(lambda f, s: echo_noise.echo_sample([f, s], batch=100), input_signature=[spec, spec])
    # The output keeps the input's batch dimension: nothing is built from the declared size.
    assert sample.get_concrete_function().structured_outputs.shape.as_list() == [None, 4]
    fx, sx = _constant_scale_batch(110, 4, 0.5, -0.5, seed=15)
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch=100"):
        sample(fx, sx)


def _seed_readme_model(latent_dim, set_batch):
    """The Keras example of the seed README, on flat 784-pixel inputs."""
    sample = echo_noise.echo_sample if set_batch else (lambda t: echo_noise.echo_sample(t, set_batch=False))
    x = keras.Input((784,))
    h = keras.layers.Dense(64, activation="relu")(x)
    z_mean = keras.layers.Dense(latent_dim, activation=model_utils.activations.tanh64)(h)
    z_log_scale = keras.layers.Dense(latent_dim, activation=tf.math.log_sigmoid)(h)
    z_activation = keras.layers.Lambda(sample)([z_mean, z_log_scale])
    echo_loss = keras.layers.Lambda(echo_noise.echo_loss)([z_log_scale])
    recon = keras.layers.Dense(784, activation="sigmoid")(z_activation)
    model = keras.Model(x, [recon, echo_loss])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=[
            lambda y, p: 784 * keras.losses.binary_crossentropy(y, p),
            lambda y, rate: tf.reduce_sum(rate, axis=-1),
        ],
    )
    return model


@pytest.mark.parametrize("set_batch, batch_size", [(True, 100), (False, 128)])
def test_seed_readme_keras_snippet_builds_and_trains(set_batch, batch_size):
    x = (np.random.default_rng(16).uniform(size=(4 * batch_size, 784)) < 0.3).astype("float32")
    model = _seed_readme_model(8, set_batch)
    history = model.fit(x, [x, np.zeros((len(x), 8), "float32")], batch_size=batch_size, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
