"""Numerical precision of a run: float32, or bfloat16 for the convolutions and dense layers.

``mixed_bfloat16`` (Keras's dtype policy of that name) computes the encoder's and decoder's
layers in bfloat16 (8 bits of mantissa) with float32 weights; the noise channel and its
dense heads, the rates, the distortion, the flows and their log-determinants, the marginal
and the losses stay in float32, because an exact rate must not be computed with 8 bits of
mantissa (`model.RateDistortionModel` casts the encoder's features and the decoder's
output to float32). bfloat16 is fast only where the hardware has it: on x86-64 CPUs with
AVX512_BF16 or AMX-BF16 through oneDNN, on ARM CPUs with BF16, and on GPUs of compute
capability 8.0 and newer.
"""

from __future__ import annotations

from pathlib import Path

PRECISIONS = ("float32", "mixed_bfloat16")
_X86_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags the kernel reports (x86 "flags", ARM "Features")."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def bfloat16_unsupported_reason(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """None when this machine computes bfloat16 convolutions in hardware, else why not."""
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and capability >= (8, 0):
            return None
    flags = _cpu_flags(cpuinfo)
    if "bf16" in flags:  # ARM (FEAT_BF16)
        return None
    if not flags & _X86_BF16_FLAGS:
        return "this CPU has no bfloat16 instructions (neither AVX512_BF16 nor AMX-BF16) and there is no GPU with bfloat16"
    if not _pywrap_util_port.IsMklEnabled():
        return "TensorFlow's oneDNN kernels are off (TF_ENABLE_ONEDNN_OPTS=0), and its other bfloat16 kernels are emulated"
    return None


def effective_precision(requested: str) -> tuple[str, str | None]:
    """The precision to train in and, when it is not the one requested, a warning saying why."""
    if requested == "float32":
        return requested, None
    reason = bfloat16_unsupported_reason()
    if reason is None:
        return requested, None
    return "float32", f"precision {requested} falls back to float32: {reason}"
