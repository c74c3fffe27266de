"""The runs of a sweep: one `PlannedRun` per grid point, with its results name and state.

Every run gets `run.py`'s default results name, <config>_<dataset>_beta<β>_seed<seed>, so
a sweep is idempotent: a run whose results exist is done, and one with a checkpoint
resumes from it. A run's state is read from the results directory alone, so it is the
same wherever the run ran (here, or as a Slurm array task).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from analysis.grid import SweepError, make_grid
from experiment.checkpoints import checkpoint_dir, checkpointed_epochs
from experiment.options import RunOptions
from experiment.results import result_paths
from experiment.train import default_filename, resolve_config
from model_utils.config import ConfigError

RUN_SCRIPT = Path(__file__).resolve().parent.parent / "run.py"
DONE, CHECKPOINTED, NOT_STARTED = "done", "checkpointed", "not started"


@dataclass(frozen=True)
class Progress:
    """DONE (results written), CHECKPOINTED at `epoch` of `epochs` (stopped, or still
    running), or NOT_STARTED; printed as 'done', 'checkpointed at epoch k of n', 'not started'."""

    stage: str
    epoch: int | None = None
    epochs: int | None = None

    def __str__(self) -> str:
        return f"{self.stage} at epoch {self.epoch} of {self.epochs}" if self.stage == CHECKPOINTED else self.stage


@dataclass(frozen=True)
class PlannedRun:
    options: RunOptions
    name: str
    pickle_path: Path
    epochs: int  # the run's number of epochs (the config's, or --epochs)

    @property
    def log_path(self) -> Path:
        return self.pickle_path.with_suffix(".log")

    def exists(self) -> bool:
        return self.pickle_path.exists()

    def checkpointed_epoch(self) -> int | None:
        """The epoch an interrupted run would resume from, if it has a checkpoint."""
        epochs = checkpointed_epochs(checkpoint_dir(self.options.results_dir, self.name))
        return epochs[-1] if epochs else None

    def state(self) -> str:
        if self.exists():
            return "exists"
        epoch = self.checkpointed_epoch()
        return "missing" if epoch is None else f"resumes from epoch {epoch}"

    def progress(self) -> Progress:
        """How far the run got, from its files alone (wherever it ran)."""
        if self.exists():
            return Progress(DONE)
        epoch = self.checkpointed_epoch()
        return Progress(NOT_STARTED) if epoch is None else Progress(CHECKPOINTED, epoch, self.epochs)

    def command(self) -> list[str]:
        """The `run.py` command of this run, as it can be typed from the current directory."""
        return ["python", os.path.relpath(RUN_SCRIPT), *self.options.to_argv()]

    def argv(self) -> list[str]:
        """The same command as a process runs it: this Python, the path of `run.py`, the flags."""
        return [sys.executable, str(RUN_SCRIPT), *self.options.to_argv()]


def plan(entries: dict, source: str, jobs: int = 1) -> list[PlannedRun]:
    """The runs of the grid with their results names; SweepError if the grid is invalid or
    two runs would share a name. With several jobs, each run gets its share of the CPUs."""
    grid = make_grid(entries, source)
    threads = max(1, len(os.sched_getaffinity(0)) // jobs) if jobs > 1 else None
    runs: dict[str, PlannedRun] = {}
    for options in grid.expand():
        if threads is not None and options.threads is None:
            options = replace(options, threads=threads)
        try:
            config = resolve_config(options)
            name = default_filename(options, config)
        except ConfigError as error:
            raise SweepError(f"{source}: {error}") from None
        if name in runs:
            raise SweepError(
                f"{source}: configs {runs[name].options.config!r} and {options.config!r} give the same results "
                f"name {name!r}; give the config files different names"
            )
        runs[name] = PlannedRun(options, name, result_paths(options.results_dir, name)[0], config.epochs)
    return list(runs.values())
