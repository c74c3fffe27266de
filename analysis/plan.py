"""The runs of a sweep: one `PlannedRun` per grid point, with its results name and state.

Every run gets `run.py`'s default results name, <config>_<dataset>_beta<β>_seed<seed>, so
a sweep is idempotent: a run whose results exist is done, and one with a checkpoint
resumes from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from analysis.grid import SweepError, make_grid
from experiment.checkpoints import checkpoint_dir, checkpointed_epochs
from experiment.options import RunOptions
from experiment.results import result_paths
from experiment.train import default_filename, resolve_config
from model_utils.config import ConfigError

RUN_SCRIPT = Path(__file__).resolve().parent.parent / "run.py"


@dataclass(frozen=True)
class PlannedRun:
    options: RunOptions
    name: str
    pickle_path: Path

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

    def command(self) -> list[str]:
        """The `run.py` command of this run, as it can be typed from the current directory."""
        return ["python", os.path.relpath(RUN_SCRIPT), *self.options.to_argv()]


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
            name = default_filename(options, resolve_config(options))
        except ConfigError as error:
            raise SweepError(f"{source}: {error}") from None
        if name in runs:
            raise SweepError(
                f"{source}: configs {runs[name].options.config!r} and {options.config!r} give the same results "
                f"name {name!r}; give the config files different names"
            )
        runs[name] = PlannedRun(options, name, result_paths(options.results_dir, name)[0])
    return list(runs.values())
