"""Per-epoch schedules: the learning rate, by the name a config's ``lr`` gives, and the
multiplier of the rate terms' weights that a config's ``anneal_schedule`` describes.

A learning-rate schedule maps the epoch index (0-based) and the run's number of epochs to
the learning rate used during that epoch.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

import numpy as np

Schedule = Callable[[int, int], float]

ALEMI_LR = 3e-4


def alemi_lr_sched(epoch: int, epochs: int) -> float:
    """Alemi et al. (2018, "Fixing a Broken ELBO"): 3·10⁻⁴ for the first half of training
    (100 of 200 epochs), then a linear decay that reaches 0 at the end of training.

    For a run of E epochs the rate during epoch e is 3·10⁻⁴·min(1, (E - e)/(E/2)), so a
    200-epoch run keeps 3·10⁻⁴ until epoch 100 and uses 3·10⁻⁴·(200 - e)/100 after; shorter
    or longer runs are scaled to their length. The reference implementation's version of
    this schedule rises again after epoch 100; that is a bug and is not reproduced.
    """
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} is outside a run of {epochs} epochs")
    return ALEMI_LR * min(1.0, (epochs - epoch) / (epochs / 2.0))


SCHEDULES: dict[str, Schedule] = {"alemi_lr_sched": alemi_lr_sched}


def learning_rate_schedule(lr: float | str) -> Schedule:
    """The schedule for a config's ``lr``: a schedule name, or a constant rate."""
    if isinstance(lr, str):
        return SCHEDULES[lr]
    return lambda epoch, epochs: float(lr)


# ---- the rate weights' schedule ---------------------------------------------------------

ANNEAL_FUNCTIONS = ("linear", "step")


@dataclass(frozen=True)
class RateSchedule:
    """A per-epoch multiplier m(e) of the rate terms' weights (β), from a config's
    ``anneal_schedule`` breakpoints [[epoch, m], ...] (epochs 0-based, increasing) and its
    ``anneal_function``: "linear" interpolates between breakpoints, "step" holds each
    breakpoint's m until the next. Before the first breakpoint m is its value, after the
    last it is the last value. A warm-up of two epochs at 0 then a ramp to 1 by epoch 5 is
    [[0, 0], [2, 0], [5, 1]]; epoch e then trains with weights β·m(e).
    """

    points: tuple[tuple[int, float], ...]
    function: str = "linear"

    def __call__(self, epoch: int) -> float:
        epochs = [point[0] for point in self.points]
        values = [point[1] for point in self.points]
        if self.function == "step":
            return values[max(0, bisect.bisect_right(epochs, epoch) - 1)]
        return float(np.interp(epoch, epochs, values))
