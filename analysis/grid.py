"""Sweeps: a grid of runs, configs × datasets × β × seeds, from a JSON file or flags.

A sweep file is a JSON object with the keys

- ``configs``: config names or paths, as `run.py --config` takes them (required);
- ``betas``: the β values, finite numbers >= 0 (required);
- ``datasets``: dataset names (default ``["binary_mnist"]``);
- ``seeds``: integer seeds (default ``[0]``);
- ``run_args``: any other `run.py` option by its field name in `RunOptions`, e.g.
  ``{"epochs": 10, "train_size": 10000, "validate": true}`` (default ``{}``);
- ``slurm``: what each task asks for when the sweep is submitted to Slurm
  (`sweep.py --slurm`): ``partition``, ``time`` ([D-]HH:MM:SS or minutes),
  ``cpus_per_task``, ``gpus_per_task``, ``mem`` (e.g. ``"16G"``), each optional
  (default ``{}``: the cluster's defaults).

Every problem is one `SweepError` naming the file and the key, raised before any run
starts. `expand` turns a validated grid into one `RunOptions` per run, in a fixed order.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.slurm import RESOURCE_PARSERS, SlurmResources
from datasets.registry import ALIASES, NAMES
from model_utils.config import ConfigError, load_config
from experiment.options import FIELDS, OptionError, RunOptions, flag, parse_run_options

# Set by the grid itself, or meaningless for a grid of runs with their default names.
GRID_KEYS = ("configs", "datasets", "betas", "seeds")
NOT_RUN_ARGS = {
    "config": "configs", "dataset": "datasets", "beta": "betas", "seed": "seeds",
    "filename": "the default results names (which make a sweep resumable)",
    "overwrite": "the sweep, which skips finished runs (delete their results to run them again)",
}
SWEEP_KEYS = (*GRID_KEYS, "run_args", "slurm")


class SweepError(ValueError):
    """An invalid sweep: where (file and key, or command-line flag) and what."""


@dataclass(frozen=True)
class Grid:
    """A validated sweep: the axes of the grid, the options every run shares, and what each
    run asks Slurm for when the sweep is submitted there."""

    configs: tuple[str, ...]
    betas: tuple[float, ...]
    datasets: tuple[str, ...] = ("binary_mnist",)
    seeds: tuple[int, ...] = (0,)
    run_args: dict[str, Any] = field(default_factory=dict)
    slurm: SlurmResources = SlurmResources()

    def expand(self) -> list[RunOptions]:
        """One RunOptions per (config, dataset, β, seed), in that nesting order."""
        return [
            RunOptions(config=config, dataset=dataset, beta=beta, seed=seed, **self.run_args)
            for config, dataset, beta, seed in itertools.product(self.configs, self.datasets, self.betas, self.seeds)
        ]


def read_sweep_file(path: str | Path) -> dict[str, Any]:
    """The JSON object of a sweep file, with its keys checked (values are checked by
    `make_grid`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SweepError(f"{path}: cannot be read: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SweepError(f"{path}: line {error.lineno} column {error.colno}: invalid JSON: {error.msg}") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path}: a sweep file must be a JSON object {{...}}")
    for key in data:
        if key not in SWEEP_KEYS:
            raise SweepError(f"{path}: {key}: unknown key; expected one of: {', '.join(SWEEP_KEYS)}")
    return data


def make_grid(entries: dict[str, Any], source: str) -> Grid:
    """Validate the grid's entries (the keys of a sweep file; `source` names it in
    messages) and load every config once, so that a bad one stops the sweep before it
    starts."""
    def where(key: str) -> str:
        return f"{source}: {key}"

    if "configs" not in entries:
        raise SweepError(f"{where('configs')}: is missing")
    if "betas" not in entries:
        raise SweepError(f"{where('betas')}: is missing")
    configs = _unique_list(entries["configs"], where("configs"), _config_name)
    betas = _unique_list(entries["betas"], where("betas"), _beta)
    datasets = _unique_list(entries.get("datasets", ["binary_mnist"]), where("datasets"), _dataset)
    seeds = _unique_list(entries.get("seeds", [0]), where("seeds"), _seed)
    run_args = _run_args(entries.get("run_args", {}), where("run_args"))
    slurm = _slurm(entries.get("slurm", {}), where("slurm"))
    for index, config in enumerate(configs):
        try:
            load_config(config)
        except ConfigError as error:
            raise SweepError(f"{where(f'configs[{index}]')}: {error}") from None
    return Grid(tuple(configs), tuple(betas), tuple(datasets), tuple(seeds), run_args, slurm)


class _Invalid(Exception):
    pass


def _unique_list(value: Any, where: str, parse) -> list:
    if not isinstance(value, list) or not value:
        raise SweepError(f"{where}: expected a non-empty list, got {value!r}")
    items = []
    for index, item in enumerate(value):
        try:
            parsed = parse(item)
        except _Invalid as invalid:
            raise SweepError(f"{where}[{index}]: {invalid}") from None
        if parsed in items:
            raise SweepError(f"{where}[{index}]: {item!r} is listed twice")
        items.append(parsed)
    return items


def _config_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a config name or path, got {value!r}")
    return value


def _beta(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _Invalid(f"expected a finite number >= 0, got {value!r}")
    return float(value)


def _dataset(value: Any) -> str:
    if value not in NAMES:
        raise _Invalid(f"unknown dataset {value!r}; expected one of: {', '.join(NAMES)}")
    return ALIASES.get(value, value)


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer, got {value!r}")
    return value


def _run_args(value: Any, where: str) -> dict[str, Any]:
    """The run_args object as RunOptions fields, each value checked by `run.py`'s own
    parser. Keys may use dashes or underscores (train-size, train_size)."""
    if not isinstance(value, dict):
        raise SweepError(f"{where}: expected an object {{...}}, got {value!r}")
    options: dict[str, Any] = {}
    for key, item in value.items():
        name = key.replace("-", "_")
        if name in NOT_RUN_ARGS:
            raise SweepError(f"{where}.{key}: is set by {NOT_RUN_ARGS[name]}, not by run_args")
        if name not in FIELDS:
            allowed = ", ".join(f for f in FIELDS if f not in NOT_RUN_ARGS)
            raise SweepError(f"{where}.{key}: unknown run.py option; expected one of: {allowed}")
        if isinstance(item, (dict, list)):
            raise SweepError(f"{where}.{key}: expected a single value, got {item!r}")
        options[name] = _checked_option(name, item, f"{where}.{key}")
    return options


def _slurm(value: Any, where: str) -> SlurmResources:
    """The slurm object as SlurmResources, each value checked by the parser that also
    checks `sweep.py`'s flags. Keys may use dashes or underscores (cpus-per-task)."""
    if not isinstance(value, dict):
        raise SweepError(f"{where}: expected an object {{...}}, got {value!r}")
    resources: dict[str, Any] = {}
    for key, item in value.items():
        name = key.replace("-", "_")
        if name not in RESOURCE_PARSERS:
            raise SweepError(f"{where}.{key}: unknown key; expected one of: {', '.join(RESOURCE_PARSERS)}")
        try:
            resources[name] = RESOURCE_PARSERS[name](item)
        except ValueError as error:
            raise SweepError(f"{where}.{key}: {error}") from None
    return SlurmResources(**resources)


def _checked_option(name: str, value: Any, where: str) -> Any:
    """The value of one RunOptions field, parsed from the flag as `run.py` would."""
    default = getattr(RunOptions, name)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SweepError(f"{where}: expected true or false, got {value!r}")
        return value
    if value is None:
        if default is not None:
            raise SweepError(f"{where}: null is not allowed; omit the key for the default ({default!r})")
        return None
    try:
        parsed = parse_run_options([flag(name), str(value)], exit=False)
    except OptionError as error:
        raise SweepError(f"{where}: {error}") from None
    return getattr(parsed, name)
