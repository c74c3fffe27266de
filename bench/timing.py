"""Timing rounds of a traced TensorFlow function, for the in-process benchmarks."""

from __future__ import annotations

import time
from typing import Callable

import tensorflow as tf


def seconds_per_call(function: Callable[[], object], calls: int) -> Callable[[], float]:
    """A timing round: `calls` calls of `function` (called once first, to trace and warm
    up), mean seconds per call, waiting for the last call's results."""
    function()

    def one_round() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            result = function()
        tf.nest.map_structure(lambda t: t.numpy() if t is not None else None, result)
        return (time.perf_counter() - start) / calls

    return one_round
