"""Data-parallel training over several devices, with `tf.distribute.MirroredStrategy`.

`--devices N` trains one model on N replicas: N GPUs, or, on a machine without GPUs, N
logical devices carved out of the CPU (`tf.config.set_logical_device_configuration`, one
per core at most). Each replica runs the training step on its own batch of the config's
`batch` examples, so the global batch is N × batch, and the replicas' gradients are
averaged. Echo noise is computed per replica: each example's noise is built from the
other examples of its replica's batch, with the clip computed for `batch`, so the rate is
the exact −Σ E log S(x) of the same channel as on one device; a single device with a batch
of N × batch would be another channel (more neighbours, another clip). Evaluation runs
on one device, in batches of `batch`.
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

from experiment.errors import EXIT_USAGE, RunError


def data_parallel_strategy(devices: int | None) -> tf.distribute.Strategy | None:
    """The MirroredStrategy over `devices` replicas, or None for one device (training then
    takes no strategy at all, as it always did). Must run before TensorFlow starts its
    runtime, to split the CPU; RunError when the machine has fewer devices. One strategy
    serves every run of a process with that many devices: two would number their
    cross-device reductions alike and mix them up."""
    if devices is None or devices == 1:
        return None
    return _mirrored_strategy(devices)


@functools.cache
def _mirrored_strategy(devices: int) -> tf.distribute.Strategy:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if devices > len(gpus):
            raise RunError(f"--devices {devices}: this machine has {len(gpus)} GPU{'s' * (len(gpus) != 1)}", EXIT_USAGE)
        return tf.distribute.MirroredStrategy([f"/gpu:{index}" for index in range(devices)])
    cores = len(os.sched_getaffinity(0))
    if devices > cores:
        raise RunError(f"--devices {devices}: this machine has no GPU and {cores} CPU cores, so at most {cores} "
                       "logical CPU devices", EXIT_USAGE)
    cpu = tf.config.list_physical_devices("CPU")[0]
    configured = tf.config.get_logical_device_configuration(cpu)
    if configured is None:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        except RuntimeError:
            raise RunError("--devices must be set before TensorFlow starts; run it in a new process", EXIT_USAGE) from None
    elif len(configured) < devices:
        raise RunError(f"--devices {devices}: this process already split the CPU into {len(configured)} devices; "
                       "run it in a new process", EXIT_USAGE)
    return tf.distribute.MirroredStrategy([f"/cpu:{index}" for index in range(devices)])
