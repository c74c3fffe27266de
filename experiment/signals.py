"""Ctrl-C and SIGTERM during a run: both stop it at the next batch, as exceptions.

SIGINT raises KeyboardInterrupt and SIGTERM `Terminated` in the main thread once
`raise_on_signals` is called; a signal whose exception was swallowed (by a finalizer, see
`raise_if_signalled`) still stops training at the next batch (`SignalCheck`).
"""

from __future__ import annotations

import signal

import keras


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, as KeyboardInterrupt is by SIGINT."""


_signals_received: list[int] = []


def _interrupt(signum, frame):
    _signals_received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def raise_on_signals() -> None:
    """From now on SIGINT raises KeyboardInterrupt and SIGTERM Terminated in the main thread,
    and both are remembered for `raise_if_signalled`."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def raise_if_signalled() -> None:
    """Raise again for a signal whose exception was lost: Python swallows an exception
    raised while a finalizer (__del__) runs, and TensorFlow's collect its traced functions."""
    if _signals_received:
        raise Terminated() if _signals_received[-1] == signal.SIGTERM else KeyboardInterrupt()


class SignalCheck(keras.callbacks.Callback):
    """Stops training at the next batch after a signal whose exception was lost."""

    def on_train_batch_end(self, batch, logs=None):
        raise_if_signalled()

    def on_test_batch_end(self, batch, logs=None):
        raise_if_signalled()
