"""One run.py run in a fresh process, the path a user's run takes, for the benchmarks."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parent.parent


def run_in_process(argv: Sequence[str], results: Path, name: str, data_dir: str | None = None,
                   entry: Sequence[str] = ("run.py",)) -> dict[str, Any]:
    """The results dict of `python <entry> <argv>` writing `results/<name>.pickle` (silent,
    overwriting); SystemExit with the end of its stderr if it fails."""
    command = [sys.executable, *entry, *argv, "--results-dir", str(results), "--filename", name,
               "--verbose", "0", "--overwrite"]
    if data_dir:
        command += ["--data-dir", data_dir]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr[-2000:]}")
    with open(results / f"{name}.pickle", "rb") as file:
        return pickle.load(file)
