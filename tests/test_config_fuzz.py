"""No config crashes the process: seeded mutations of the reference configs either build a
model or are refused with a ConfigError, never another exception, never an abort.

Each mutated config is built in a worker process (tests/config_fuzz_worker.py), so that a
TensorFlow abort is caught as a failure naming the config instead of killing the suite.
ECHO_FUZZ_MUTATIONS (default 10) sets the mutations per reference config.
"""

import copy
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from support import REFERENCE_CONFIGS, REPO, require_reference_configs

MUTATIONS = int(os.environ.get("ECHO_FUZZ_MUTATIONS", "10"))
WORKERS = 2
# Wrong types, huge, negative and non-finite numbers, empty containers, code-like strings,
# and plausible values that keep some mutations buildable, so that both sides are reached.
VALUES = [
    None, True, False, 0, -1, 1.5, 10**12, -(10**12), 2**63, math.nan, math.inf, -math.inf,
    "", "os.system", "__import__('os').system('true')", "same ", [], [0], [-3, 2], [10**12, 1],
    [[1]], {}, {"type": "nope"},
    1, 2, 3, 7, 16, 0.5, "same", "valid", "relu", "sigmoid", [3, 5], [2, 1],
]


def _paths(node, prefix=()):
    """Every (path, value) below the root of a JSON tree."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in children:
        yield prefix + (key,), value
        yield from _paths(value, prefix + (key,))


def _mutate(config: dict, rng: np.random.Generator) -> tuple[dict, str]:
    """A copy of config with one or two random edits, and what they were."""
    mutated, edits = copy.deepcopy(config), []
    for _ in range(rng.integers(1, 3)):
        paths = list(_paths(mutated))
        path, value = paths[rng.integers(len(paths))]
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        action = rng.integers(4)
        if action == 0:
            del parent[path[-1]]
            edits.append(f"deleted {path}")
        elif action == 1 and isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[path[-1]] = value * float(rng.choice([-1, 0, 1e6, 1e12, 0.5]))
            edits.append(f"scaled {path} to {parent[path[-1]]!r}")
        else:
            parent[path[-1]] = copy.deepcopy(VALUES[rng.integers(len(VALUES))])
            edits.append(f"set {path} to {parent[path[-1]]!r}")
    return mutated, "; ".join(edits)


def _run_worker(configs: list[dict], tmp_path, worker: int) -> list[dict]:
    """The outcome of each config, in order; a worker that dies is restarted after the
    config that killed it, which is reported as "crashed"."""
    results: list[dict] = []
    while len(results) < len(configs):
        path = tmp_path / f"configs_{worker}_{len(results)}.json"
        path.write_text(json.dumps(configs[len(results):]))
        finished = subprocess.run([sys.executable, str(REPO / "tests" / "config_fuzz_worker.py"), str(path)],
                                  capture_output=True, text=True, timeout=1500)
        lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
        results += [line for line in lines if "outcome" in line]
        if finished.returncode != 0 and len(results) < len(configs):
            results.append({"outcome": "crashed", "detail": f"exit {finished.returncode}: {finished.stderr[-1500:]}"})
    return results


def test_mutated_reference_configs_build_or_are_refused(tmp_path):
    require_reference_configs()
    rng = np.random.default_rng(20261128)
    cases = [_mutate(json.loads(path.read_text()), rng) for path in REFERENCE_CONFIGS for _ in range(MUTATIONS)]
    shares = [cases[worker::WORKERS] for worker in range(WORKERS)]
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda w: _run_worker([config for config, _ in shares[w]], tmp_path, w), range(WORKERS)))
    counts = {"built": 0, "refused": 0}
    failures = []
    for share, share_results in zip(shares, results):
        for (_, edits), result in zip(share, share_results):
            if result["outcome"] in counts:
                counts[result["outcome"]] += 1
            else:
                failures.append(f"{edits}: {result['outcome']}: {result['detail']}")
    print(f"fuzz: {len(cases)} mutated configs, {counts['built']} built, {counts['refused']} refused")
    assert not failures, f"{len(failures)} of {len(cases)} mutated configs failed:\n" + "\n".join(failures[:10])
    assert counts["built"] > 0 and counts["refused"] > 0  # the mutations reach both sides
