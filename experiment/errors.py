"""Why a run ends early: `RunError`, with the exit status its command line returns."""

from __future__ import annotations

EXIT_DATA, EXIT_USAGE = 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


class RunError(Exception):
    """A problem that ends the run with a message and a non-zero exit status."""

    def __init__(self, message: str, status: int = EXIT_DATA):
        super().__init__(message)
        self.status = status
