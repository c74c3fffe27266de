"""Subnormal floats flushed to zero in the threads that start TensorFlow's work.

TensorFlow's own thread pools run with flush-to-zero (FTZ) and denormals-are-zero (DAZ)
set, but the thread that calls a traced function (Python's main thread, which Keras's
`fit` loop runs in) does not, and TensorFlow runs some kernels of a traced function
inline on that thread (measured: 1e-39 · 1 on one element gives 1e-39 there, 0
elsewhere). There a float32 below 1.18e-38 (e.g. log s(x) = log sigmoid(a) for a
saturated Echo scale head, a ≈ 90) stays subnormal, and on CPUs that handle subnormals
in microcode each operation on one costs about a hundred cycles. Setting FTZ and DAZ in
the calling thread makes every thread that computes flush alike: values below the
smallest normal float become 0, a change far below float32 rounding of any quantity the
framework reports, and the same whichever thread ran an op.

Threads created afterwards inherit the setting (POSIX threads inherit the floating-point
environment of their creator).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

# x86-64 glibc: fenv_t is 32 bytes, the SSE control register MXCSR in its last 4.
_X86_MXCSR_OFFSET, _X86_FTZ, _X86_DAZ = 28, 1 << 15, 1 << 6
# AArch64 glibc: fenv_t is {fpcr, fpsr}; FPCR bit 24 (FZ) flushes inputs and outputs.
_ARM_FPCR_OFFSET, _ARM_FZ = 0, 1 << 24
_CONTROL_BITS = {"x86_64": (_X86_MXCSR_OFFSET, _X86_FTZ | _X86_DAZ), "aarch64": (_ARM_FPCR_OFFSET, _ARM_FZ)}


def flush_subnormals_to_zero() -> bool:
    """Set flush-to-zero and denormals-are-zero in the calling thread's floating-point
    control register (x86-64 MXCSR bits 15 and 6, AArch64 FPCR bit 24) through the C
    library's fegetenv/fesetenv. Returns True if they are set, False on a platform this
    does not cover (then nothing changes)."""
    control = _CONTROL_BITS.get(platform.machine().lower().replace("amd64", "x86_64"))
    libm_name = ctypes.util.find_library("m")
    if control is None or not sys.platform.startswith("linux") or libm_name is None:
        return False
    offset, bits = control
    libm = ctypes.CDLL(libm_name)
    environment = (ctypes.c_uint8 * 64)()  # larger than any fenv_t
    if libm.fegetenv(environment) != 0:
        return False
    register = int.from_bytes(bytes(environment[offset:offset + 4]), "little") | bits
    environment[offset:offset + 4] = list(register.to_bytes(4, "little"))
    return libm.fesetenv(environment) == 0
