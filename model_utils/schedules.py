"""Learning-rate schedules, by the name a config's ``lr`` gives.

A schedule maps the epoch index (0-based) and the run's number of epochs to the learning
rate used during that epoch.
"""

from __future__ import annotations

from typing import Callable

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
