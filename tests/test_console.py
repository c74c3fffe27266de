"""A clean console: TensorFlow's start-up notices are held back, anything else gets through."""

import os
import subprocess
import sys

import pytest

from experiment.console import without_startup_notices
from support import REPO

NOTICES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795886820.333043    9486 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.\n"
    "I0000 00:00:1795886820.333369    9486 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n"
    "I0000 00:00:1795886820.382065    9486 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.\n"
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.\n"
    "E0000 00:00:1795886823.303890    9486 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)\n"
)


def test_notices_are_dropped_and_real_errors_pass(capfd):
    real = "E0000 00:00:1795886830.1 op_kernel.cc:1] OP_REQUIRES failed: something real went wrong\n"
    without_startup_notices(lambda: os.write(2, (NOTICES + real + "Traceback: also real\n").encode()))
    assert capfd.readouterr().err == real + "Traceback: also real\n"


@pytest.mark.parametrize("entry_point", ["run.py", "sweep.py", "report.py"])
def test_entry_points_start_without_tensorflow_notices(entry_point):
    finished = subprocess.run([sys.executable, entry_point, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0 and finished.stdout.startswith("usage:")
    assert finished.stderr == ""
