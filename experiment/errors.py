"""Why a run or a command ends early: `RunError`, with the exit status its command line
returns, and `failure`, which turns any of the problems a command reports into its
one-line message and exit status."""

from __future__ import annotations

import datasets
from experiment.results import ResultsError
from model_utils.config import ConfigError

EXIT_DATA, EXIT_USAGE = 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


class RunError(Exception):
    """A problem that ends the run with a message and a non-zero exit status."""

    def __init__(self, message: str, status: int = EXIT_DATA):
        super().__init__(message)
        self.status = status


# The problems a command line reports as one line (`failure`), anything else being a bug.
REPORTED = (ConfigError, datasets.DatasetError, ResultsError, RunError)


def failure(error: Exception) -> tuple[str, int]:
    """The message and exit status of a reported problem: an invalid config (2), missing or
    unusable data or results (1), or a RunError (its own status)."""
    if isinstance(error, ConfigError):
        return f"config {error}", EXIT_USAGE
    if isinstance(error, RunError):
        return str(error), error.status
    return str(error), EXIT_DATA
