"""Subnormal floats are flushed to zero in the thread that calls TensorFlow, as in
TensorFlow's own threads (`experiment.floating_point`)."""

import platform
import subprocess
import sys

import pytest

from support import REPO

# One element of 1e-39 (a float32 subnormal) times 1 in a traced function, which TensorFlow
# runs inline on the calling thread, and the same in NumPy on that thread.
_PROBE = """
import sys
import numpy as np
if sys.argv[1] == "entry-point":
    from experiment.console import import_tensorflow_quietly
    import_tensorflow_quietly()
import tensorflow as tf
subnormal = np.float32(1e-39)
traced = tf.function(lambda v: v * 1.0)
print(float(traced(tf.constant([subnormal]))[0]), float(subnormal * np.float32(1.0)))
"""


def _probe(mode: str) -> list[float]:
    finished = subprocess.run([sys.executable, "-c", _PROBE, mode], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    return [float(value) for value in finished.stdout.split()]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64", "aarch64"), reason="FTZ is set on x86-64 and AArch64 only")
def test_entry_points_flush_subnormals_that_tensorflow_alone_keeps_on_the_calling_thread():
    assert _probe("plain") == [pytest.approx(1e-39, rel=1e-3)] * 2  # TensorFlow alone keeps them here
    assert _probe("entry-point") == [0.0, 0.0]
