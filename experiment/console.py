"""A clean console: TensorFlow imported without its C++ start-up notices.

TensorFlow 2.21 logs through Abseil before Abseil's logging is initialised, so its start-up
lines (the oneDNN notice, "Could not find cuda drivers", the CPU-instruction notice, the
``cuInit`` error of a machine without a GPU) go straight to the stderr file descriptor and
``TF_CPP_MIN_LOG_LEVEL`` does not hold them back. `import_tensorflow_quietly` imports
TensorFlow and probes its devices with file descriptor 2 pointed at a temporary file,
then writes back to stderr every captured line that is not one of those known notices, so
that a real error still reaches the user. Every entry point calls it before anything
imports TensorFlow; it also flushes subnormal floats to zero in the calling thread.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Callable

from experiment.floating_point import flush_subnormals_to_zero

# Start-up notices of TensorFlow on a CPU-only machine, and the Abseil line before them.
NOTICES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers"
    r"|cpu_feature_guard\.cc"
    r"|To enable the following instructions:"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation_placer\.cc"
)


def without_startup_notices(action: Callable[[], None]) -> None:
    """Run `action` with file descriptor 2 pointed at a temporary file, then write to
    stderr every line it wrote there that is not a known start-up notice."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            action()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            passed_on = [line for line in captured.read().decode(errors="replace").splitlines()
                         if line.strip() and not NOTICES.search(line)]
            if passed_on:
                print("\n".join(passed_on), file=sys.stderr, flush=True)


def _start_tensorflow() -> None:
    import tensorflow as tf

    # Listing the physical devices probes CUDA (the cuInit error) without starting the
    # runtime, so that thread counts can still be set afterwards.
    tf.config.list_physical_devices()


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices without its start-up notices, with subnormal
    floats flushed to zero in this thread as in TensorFlow's own (`experiment.floating_point`)."""
    flush_subnormals_to_zero()
    if "tensorflow" not in sys.modules:
        without_startup_notices(_start_tensorflow)
