"""A finished run, read back from its results: `load_run` rebuilds its model, and `measure`
scores it again on its test set (the measures of `evaluate.py`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from experiment.data import prepare_data
from experiment.evaluation import evaluate, information_measures, scores_line
from experiment.options import FIELDS, RunOptions
from experiment.results import ResultsError, load_results, result_paths, save_pickle
from model import RateDistortionModel, build_model
from model_utils.config import ExperimentConfig, parse_config


@dataclass(frozen=True)
class FinishedRun:
    """A run read back from ``<name>.pickle`` and the ``<name>.weights.h5`` beside it."""

    path: Path
    results: dict[str, Any]  # the pickled dict, as `experiment.train_and_evaluate` returned it
    config: ExperimentConfig  # the config as run (`experiment.record.resolved_config`)
    model: RateDistortionModel  # rebuilt from the config, with the trained weights

    @property
    def history(self) -> dict[str, list[float]]:
        """The per-epoch values (loss terms, ``val_*``, ``lr``, ``epoch_time``): every list
        of numbers with one entry per epoch, in nats per example for the losses."""
        return {
            name: values for name, values in self.results.items()
            if isinstance(values, list) and len(values) == self.config.epochs
            and all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)
        }


def load_run(pickle_path: str | Path) -> FinishedRun:
    """A finished run: its results dict, its config and its model, rebuilt from the pickle's
    config with the weights saved beside it. ResultsError for an unusable pickle or missing
    weights, ConfigError for a config this version cannot build."""
    pickle_path = Path(pickle_path)
    results = load_results(pickle_path)
    weights = result_paths(pickle_path.parent, pickle_path.stem)[1]
    if not weights.is_file():
        raise ResultsError(f"{weights}: no weights beside {pickle_path}; the model cannot be rebuilt")
    config = parse_config(results["config"], str(pickle_path))
    model = build_model(config)
    model.load_weights(str(weights))
    return FinishedRun(pickle_path, results, config, model)


def recorded_options(results: dict, data_dir: str | None, test_size: int | None) -> RunOptions:
    """The run's own options (as its pickle recorded them), with another data directory or
    test subset if asked."""
    recorded = {name: value for name, value in results.get("args", {}).items() if name in FIELDS}
    options = RunOptions(**recorded)
    return replace(options, data_dir=data_dir or options.data_dir, test_size=test_size or options.test_size, validate=False)


def measure(path: Path, iw: int | None, test_size: int | None, data_dir: str | None, seed: int) -> dict[str, float]:
    """The new scores of the run at `path` (test_* keys), also written into its pickle:
    I(X;Z), the marginal gap, the active units and, with `iw` = K, the importance-weighted
    NLL (nats per example), on the run's test set or a random subset of `test_size` of it,
    in batches in the random order `seed` fixes, with noise drawn from `seed`."""
    run = load_run(path)
    options = recorded_options(run.results, data_dir, test_size)
    _, arrays = prepare_data(options, run.config)
    run.model.reseed(seed)
    scores, _ = evaluate(run.model, arrays["test"], run.config.batch, seed)
    measured = information_measures(run.model, arrays["test"], scores["rate"], iw, run.config.batch, seed)
    new = {f"test_{name}": value for name, value in measured.items()}
    save_pickle(path, {**run.results, **new})
    print(f"{path.stem}: {scores_line({**scores, **measured})} on {len(arrays['test'])} test images "
          f"(nats per example); added {', '.join(sorted(new))} to {path}")
    return new
