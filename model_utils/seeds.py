"""Stateless seeds for the model's random draws, one stream per data-parallel replica.

The channels and the MMD penalty draw from `keras.random.SeedGenerator`s, whose state is a
variable read when a traced step runs (so reseeding needs no new trace). Under
`tf.distribute.MirroredStrategy` every replica reads the same state, so with several
replicas each one folds its replica index into the seed
(`tf.random.experimental.stateless_fold_in`) and draws an independent stream for its own
batch; on one device the seed is the generator's, as it always was.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def next_seed(generator: keras.random.SeedGenerator) -> tf.Tensor:
    """The next stateless seed [2] of `generator` for this replica (see the module)."""
    seed = generator.next()
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:  # one device, or a draw outside the replicas' steps
        return seed
    return tf.cast(tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group), seed.dtype)
