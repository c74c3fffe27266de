"""The numerical tests pass whichever way TensorFlow's oneDNN switch is set.

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported, and oneDNN's kernels
round differently from Eigen's. The suite runs in this process with one setting; the test
below re-runs the modules whose results come from TensorFlow's arithmetic in a fresh
interpreter with the other setting, so that one `pytest` command checks both.
"""

import os
import platform
import subprocess
import sys

import pytest
from tensorflow.python.util import _pywrap_util_port

from support import REPO

# Set in the re-run, which must not start another one.
_RERUN = "ECHO_TEST_ONEDNN_RERUN"
# The modules whose assertions depend on TensorFlow's float arithmetic (the dataset tests
# parse files with NumPy; one TensorFlow resize there is compared with a tolerance of 1e-5).
NUMERICAL_MODULES = [
    "tests/test_onednn.py",
    "tests/test_echo_noise.py",
    "tests/test_flows.py",
    "tests/test_noise.py",
    "tests/test_losses.py",
    "tests/test_model.py",
    "tests/test_run.py",
    "tests/test_likelihood.py",
    "tests/test_precision.py",
]


def _onednn_requested(environ) -> bool:
    """What TensorFlow makes of TF_ENABLE_ONEDNN_OPTS: on unless "0" or "false" (on x86-64
    Linux, unset means on)."""
    return environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN is on by default on x86-64 only")
def test_tensorflow_runs_with_the_onednn_setting_of_the_environment():
    assert _pywrap_util_port.IsMklEnabled() == _onednn_requested(os.environ)


@pytest.mark.skipif(os.environ.get(_RERUN) == "1", reason="this is the re-run with the other oneDNN setting")
def test_numerical_tests_pass_with_the_other_onednn_setting():
    other = "0" if _onednn_requested(os.environ) else "1"
    environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": other, _RERUN: "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NUMERICAL_MODULES]
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=1200)
    assert finished.returncode == 0, f"with TF_ENABLE_ONEDNN_OPTS={other}:\n{finished.stdout[-6000:]}{finished.stderr[-2000:]}"
