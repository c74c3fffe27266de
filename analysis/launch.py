"""Running planned runs on this machine: each a `run.py` process, at most `jobs` at a time,
its output in <results-dir>/<name>.log, one line per run as it ends (done, skipped or
failed, with its test rate, distortion and −ELBO in nats per example)."""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from analysis.plan import PlannedRun
from experiment.results import ResultsError, load_results
from experiment.signals import Terminated


def scores_text(path: Path) -> str:
    """'rate R, distortion D, -ELBO E nats per example' from a results pickle."""
    results = load_results(path)
    return (
        f"rate {results['test_rate']:.3f}, distortion {results['test_distortion']:.3f}, "
        f"-ELBO {-results['test_elbo']:.3f} nats per example"
    )


def last_error(log: Path) -> str:
    """The last line of a run's log that says what went wrong."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(empty log)"])[-1]


class Runner:
    """Runs planned runs as `run.py` processes, at most `jobs` at a time, printing one line
    per run as it ends."""

    def __init__(self, total: int):
        self.total = total
        self.finished = 0
        self.lock = threading.Lock()
        self.processes: set[subprocess.Popen] = set()
        self.stopping = False

    def report(self, status: str, run: PlannedRun, detail: str) -> None:
        with self.lock:
            self.finished += 1
            width = len(str(self.total))
            print(f"[{self.finished:>{width}}/{self.total}] {status:<7} {run.name}: {detail}", flush=True)

    def skip(self, run: PlannedRun) -> str:
        try:
            detail = f"{scores_text(run.pickle_path)} (results exist)"
        except ResultsError as error:
            detail = f"results exist but cannot be read: {error}"
        self.report("skipped", run, detail)
        return "skipped"

    def execute(self, run: PlannedRun) -> str:
        if self.stopping:
            return "not started"
        run.log_path.parent.mkdir(parents=True, exist_ok=True)
        resumed = run.checkpointed_epoch()
        start = time.perf_counter()
        with open(run.log_path, "a" if resumed else "w") as log:
            process = subprocess.Popen(run.argv(), stdout=log, stderr=subprocess.STDOUT)
            with self.lock:
                self.processes.add(process)
                if self.stopping:  # stop() came between the check above and the start
                    process.terminate()
            status = process.wait()
            with self.lock:
                self.processes.discard(process)
        seconds = time.perf_counter() - start
        if self.stopping:
            return "interrupted"
        if status == 0:
            try:
                how = f"resumed from epoch {resumed}, " if resumed else ""
                self.report("done", run, f"{scores_text(run.pickle_path)} ({how}{seconds:.0f} s)")
                return "done"
            except ResultsError as error:
                detail = f"exit 0, but {error}"
        else:
            detail = f"exit {status}: {last_error(run.log_path)}"
        self.report("failed", run, f"{detail} (log: {run.log_path})")
        return "failed"

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for process in self.processes:
                process.terminate()


def run_all(runs: list[PlannedRun], jobs: int) -> dict[str, int]:
    """Run every planned run that has no results yet; the count of each outcome."""
    runner = Runner(len(runs))
    outcomes = [runner.skip(run) for run in runs if run.exists()]
    pending = [run for run in runs if not run.exists()]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(runner.execute, run) for run in pending]
        try:
            outcomes += [future.result() for future in futures]
        except (KeyboardInterrupt, Terminated):
            runner.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return {outcome: outcomes.count(outcome) for outcome in set(outcomes)}
