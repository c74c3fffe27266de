"""A sweep's unfinished runs submitted to Slurm as one job array, through submitit.

Each array task runs one run's `run.py` command, as a local sweep does (a `run.py` process
started from the directory the sweep was started in, its output in <results-dir>/<name>.log),
so a run that was stopped resumes from its checkpoint. A run is submitted when it has no
results and is not already pending or running in Slurm from an earlier submission of the
same sweep: the same command after a timeout, a preemption or a node failure submits only
what is unfinished, and never a run twice. Submissions are recorded in
<results-dir>/slurm/submissions.jsonl; submitit's files and Slurm's log of each task are in
<results-dir>/slurm/.

This module is imported by every array task to run its `RunTask`, so it imports neither
TensorFlow nor anything that does.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import math
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import submitit
from submitit.core.utils import FailedJobError

if TYPE_CHECKING:
    from analysis.plan import PlannedRun

REPOSITORY = Path(__file__).resolve().parent.parent
RECORD = "submissions.jsonl"
JOB_NAME = "echo-sweep"


class SlurmError(Exception):
    """Slurm cannot be reached or refused the submission; nothing was submitted."""


class RunFailed(RuntimeError):
    """An array task's `run.py` ended with a non-zero exit status."""


# ---- the resources of each task --------------------------------------------------------------


def _partition(value: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(f"expected a partition name, got {value!r}")
    return value


_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})$")


def _minutes(value: Any) -> int:
    """A time limit, [D-]HH:MM:SS or whole minutes, in minutes (rounded up: submitit passes
    Slurm whole minutes)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None or int(match[3]) >= 60 or int(match[4]) >= 60:
        raise ValueError(f"expected a time limit [D-]HH:MM:SS or a number of minutes, got {value!r}")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    total = math.ceil(((days * 24 + hours) * 60 + minutes) + seconds / 60)
    if total < 1:
        raise ValueError(f"expected a time limit of at least one second, got {value!r}")
    return total


def _count(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


_MEMORY = re.compile(r"^[1-9][0-9]*([KMGT]B?)?$", re.IGNORECASE)


def _memory(value: Any) -> str:
    """Memory per node as sbatch --mem takes it: a number of megabytes, or with K, M, G or T."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _MEMORY.match(text):
        raise ValueError(f"expected memory like 16G, 500M or a number of megabytes, got {value!r}")
    return text


@dataclass(frozen=True)
class SlurmResources:
    """What each array task asks Slurm for; None leaves it to the cluster's defaults. The
    fields are sbatch's options and `sweep.py`'s flags (`cpus_per_task` is --cpus-per-task)."""

    partition: str | None = None
    time: int | None = None  # minutes
    cpus_per_task: int | None = None
    gpus_per_task: int | None = None
    mem: str | None = None

    def given(self) -> dict[str, Any]:
        """The resources that are set, by name."""
        return {spec.name: getattr(self, spec.name) for spec in fields(self) if getattr(self, spec.name) is not None}


# Each field's parser, for a sweep file's `slurm` section and `sweep.py`'s flags alike: it
# returns the field's value or raises ValueError saying what was expected.
RESOURCE_PARSERS: dict[str, Callable[[Any], Any]] = {
    "partition": _partition, "time": _minutes, "cpus_per_task": _count, "gpus_per_task": _count, "mem": _memory,
}


# ---- one array task -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunTask:
    """What one array task does: run `command` (this Python, `run.py`, the run's flags) in
    `cwd`, its output appended to `log` (so that the log of a run that was stopped, and of
    a task that Slurm requeued, goes on), and fail the task if the run fails. SIGTERM
    (scancel, a time limit, a preemption) reaches `run.py`, which keeps its last checkpoint."""

    command: tuple[str, ...]
    cwd: str
    log: str

    def __call__(self) -> None:
        with open(self.log, "a") as log:
            status = subprocess.run(self.command, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT).returncode
        if status != 0:
            raise RunFailed(f"run.py exited with status {status}; its output is in {self.log}")


# ---- submission ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """The outcome of `submit_unfinished`: the runs submitted, as (Slurm job id of the task,
    run), with the array's job id (None when nothing was left to submit), and the runs left
    alone because they have results or are still pending or running in Slurm."""

    job_id: str | None
    submitted: tuple[tuple[str, PlannedRun], ...]
    done: tuple[PlannedRun, ...]
    queued: tuple[tuple[str, PlannedRun], ...]
    folder: Path


def submit_unfinished(runs: Sequence[PlannedRun], resources: SlurmResources) -> Submission:
    """Submit, as one job array, every run that has no results and no task pending or running
    from an earlier submission; SlurmError (nothing submitted) if Slurm cannot be reached or
    refuses the job."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise SlurmError("Slurm is not reachable from here: no sbatch/squeue on the PATH (on a workstation, "
                         "start a single-node Slurm with .ci/slurm-up.sh)")
    # submitit's files and Slurm's logs; absolute, as the tasks may start elsewhere.
    folder = Path(runs[0].options.results_dir).resolve() / "slurm"
    queued_ids = _queued_tasks(folder)
    done = tuple(run for run in runs if run.exists())
    queued = tuple((queued_ids[run.name], run) for run in runs if not run.exists() and run.name in queued_ids)
    pending = [run for run in runs if not run.exists() and run.name not in queued_ids]
    if not pending:
        return Submission(None, (), done, queued, folder)
    executor = submitit.SlurmExecutor(folder=folder)
    # - Python runs in the batch step, without srun: Slurm's SIGTERM reaches run.py, while
    #   the signal submitit asks for before the time limit (to requeue checkpointable
    #   functions), which would kill run.py mid-epoch, goes to job steps only: there are none.
    # - No time limit unless one is given (submitit's default is 5 minutes): the partition's.
    # - The tasks import this module from the repository, wherever the sweep was started.
    executor.update_parameters(**{
        "job_name": JOB_NAME, "use_srun": False, "stderr_to_stdout": True, "time": None,
        "setup": [f"export PYTHONPATH={shlex.quote(str(REPOSITORY))}${{PYTHONPATH:+:$PYTHONPATH}}"],
        **resources.given(),
    })
    cwd = os.getcwd()
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.iterdir())
    try:
        with contextlib.redirect_stderr(io.StringIO()), executor.batch():  # sbatch's error goes in ours
            jobs = [
                executor.submit(RunTask(tuple(run.argv()), cwd, str(run.log_path.resolve()))) for run in pending
            ]
    except (FailedJobError, subprocess.CalledProcessError, OSError) as error:
        for path in set(folder.iterdir()) - before:  # the array's files, written for nothing
            path.unlink()
        raise SlurmError(f"sbatch failed: {_first_line(error).removeprefix('sbatch: error: ')}") from None
    submitted = tuple((job.job_id, run) for job, run in zip(jobs, pending))
    job_id = jobs[0].job_id.split("_")[0]
    with open(folder / RECORD, "a") as record:
        record.write(json.dumps({"job_id": job_id, "tasks": {task: run.name for task, run in submitted}}) + "\n")
    return Submission(job_id, submitted, done, queued, folder)


def _queued_tasks(folder: Path) -> dict[str, str]:
    """Run name -> Slurm task id, for the runs of earlier submissions (from the record in
    `folder`) whose array task is still pending or running."""
    try:
        lines = (folder / RECORD).read_text().splitlines()
    except FileNotFoundError:
        return {}
    tasks = {task: name for line in lines if line.strip() for task, name in json.loads(line)["tasks"].items()}
    listing = subprocess.run(["squeue", "--user", getpass.getuser(), "--noheader", "--array", "--format=%i"],
                             capture_output=True, text=True)
    if listing.returncode != 0:
        raise SlurmError(f"Slurm is not reachable: squeue failed: {_first_line(listing.stderr) or listing.returncode}")
    in_queue = set(listing.stdout.split())
    return {name: task for task, name in tasks.items() if task in in_queue}


def _first_line(error: object) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else ""

