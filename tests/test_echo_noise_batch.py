"""A batch of another size than `echo_sample` declared is refused with echo_noise's message.

With `set_batch=True` (the default) and a batch dimension unknown while tracing, as in the
README's Keras snippet, `echo_sample` requires the batch size `batch`. A batch of another
size must reach the user as echo_noise's own error, naming both sizes and what to do,
never as one of TensorFlow's shape errors (`Incompatible shapes: [37,28,28,1] vs.
[100,28,28,1]`). Those came from ops built from a declared size (the gradients of the
loss, shapes folded by grappler) that raced the batch check inside one graph execution, so
the tests repeat the failing step and check every outcome.
"""

import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import echo_noise
import model_utils.activations

README = Path(__file__).resolve().parent.parent / "README.md"

# The project's message names the batch it got and the batch it declared, and says what to do.
PROJECT_MESSAGE = r"echo_sample: a batch of\] \[{got}\] \[examples, but set_batch=True declared batch={declared}"


def _readme_keras_snippet() -> str:
    """The README's Keras snippet, verbatim: the ```python block that calls
    Lambda(echo_noise.echo_sample)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    snippets = [block for block in blocks if "Lambda(echo_noise.echo_sample)" in block]
    assert len(snippets) == 1, "the README should hold exactly one Keras snippet"
    return snippets[0]


def _readme_model(latent_dim=8) -> keras.Model:
    """A small autoencoder of 28x28x1 binary images around the README's snippet, as a user
    would write it: the decoder's images are compared with the input images, and the
    snippet's echo_loss is added to the loss."""
    x = keras.Input((28, 28, 1))
    h = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(x))
    namespace = {
        "tf": tf, "echo_noise": echo_noise, "model_utils": model_utils,
        "Dense": keras.layers.Dense, "Lambda": keras.layers.Lambda, "h": h, "latent_dim": latent_dim,
    }
    exec(_readme_keras_snippet(), namespace)
    decoded = keras.layers.Dense(784, activation="sigmoid")(namespace["z_activation"])
    images = keras.layers.Reshape((28, 28, 1))(decoded)
    model = keras.Model(x, [images, namespace["echo_loss"]])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=[
            lambda y, p: 784 * keras.losses.binary_crossentropy(y, p),
            lambda y, rate: tf.reduce_sum(rate, axis=-1),
        ],
        run_eagerly=False,
    )
    return model


def _binary_images(n, seed):
    return (np.random.default_rng(seed).uniform(size=(n, 28, 28, 1)) < 0.3).astype("float32")


def _fit(model, images, batch_size, epochs=1):
    targets = [images, np.zeros((len(images), 8), "float32")]
    return model.fit(images, targets, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)


def _outcome(run) -> str:
    """'ok', or the message of the InvalidArgumentError that `run` raised."""
    try:
        run()
    except tf.errors.InvalidArgumentError as error:
        return str(error)
    return "ok"


def _all_ours(outcomes, got, declared=100) -> bool:
    """Whether every outcome is echo_noise's message for a batch of `got`; if not, show
    the end of the first other one (TensorFlow's message comes last)."""
    others = [outcome for outcome in outcomes if not re.search(PROJECT_MESSAGE.format(got=got, declared=declared), outcome)]
    if others:
        # TensorFlow's message is the first line after the traceback that is not indented.
        lines = [line for line in others[0].splitlines()[1:] if line.strip() and not line.startswith((" ", "Detected"))]
        raise AssertionError(f"{len(others)}/{len(outcomes)} were not echo_noise's message, e.g. {lines[:1] or others[0]}")
    return True


def test_readme_snippet_trains_at_batch_100_and_refuses_batch_37_with_its_own_message_every_time():
    model = _readme_model()
    losses = _fit(model, _binary_images(400, seed=1), batch_size=100, epochs=2).history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert not model.run_eagerly  # graph mode: the check and TensorFlow's ops run in one graph

    # Each fit runs the same traced step on a batch of 37; any op built from the declared
    # 100 that could run before the check would make some of these TensorFlow's error.
    images = _binary_images(74, seed=2)
    outcomes = [_outcome(lambda: _fit(model, images, batch_size=37)) for _ in range(20)]
    assert _all_ours(outcomes, got=37)
    # The message says what to do.
    for advice in ("pass batch=", "set_batch=False", "replace=True", "drop_remainder=True"):
        assert advice in outcomes[0]


def test_a_last_partial_batch_in_fit_gets_the_same_message():
    model = _readme_model()
    _fit(model, _binary_images(400, seed=3), batch_size=100)  # four full batches: fine
    # 410 examples end each epoch with a batch of 10.
    images = _binary_images(410, seed=4)
    outcomes = [_outcome(lambda: _fit(model, images, batch_size=100)) for _ in range(5)]
    assert _all_ours(outcomes, got=10)
    assert "partial batch" in outcomes[0]


def test_evaluate_with_a_last_partial_batch_gets_the_same_message():
    model = _readme_model()
    images = _binary_images(410, seed=5)
    targets = [images, np.zeros((410, 8), "float32")]
    outcomes = [_outcome(lambda: model.evaluate(images, targets, batch_size=100, verbose=0)) for _ in range(5)]
    assert _all_ours(outcomes, got=10)


def test_a_batch_size_known_while_tracing_is_refused_when_tracing_naming_both_sizes():
    # 37 examples known while tracing: the clip computed for batch=100 needs more terms
    # than 37 examples give, so echo_sample raises before building anything.
    fx, sx = np.full((37, 4), 0.5, "float32"), np.full((37, 4), -0.5, "float32")
    with pytest.raises(ValueError, match=r"a batch of 37 examples is too small: the clip was computed for batch=100"):
        echo_noise.echo_sample([fx, sx])
    traced = tf.function(lambda f, s: echo_noise.echo_sample([f, s]), input_signature=[tf.TensorSpec([37, 4])] * 2)
    with pytest.raises(ValueError, match=r"pass batch=37"):
        traced.get_concrete_function()
    # The advice works: the clip computed for batch=37.
    assert echo_noise.echo_sample([fx, sx], batch=37).shape == (37, 4)
