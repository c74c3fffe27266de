"""Many runs side by side: one row per results pickle, and means over seeds.

`collect` reads every results pickle under a directory into `RunRecord`s, skipping with a
warning each file that is not a readable results file. `write_csv` writes one row per run
with the values exactly as in the pickles; `group_runs` gathers the runs that differ only
by their seed (same dataset, method, budget and β) and `write_markdown` tabulates their
mean ± standard deviation. Rates, distortions and -ELBOs are in nats per example.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from model_utils.losses import marginal_name
from model_utils.noise import CHANNELS
from experiment.results import ResultsError, load_results

BASE_COLUMNS = (
    "name", "config", "method", "channel", "marginal", "dataset", "beta", "seed", "epochs",
    "train_size", "test_size", "test_rate", "test_distortion", "test_elbo", "train_seconds",
)
# Channel kinds in the order methods are listed: Echo, then the Gaussian, then the IAF.
CHANNEL_ORDER = ("echo", "gaussian", "iaf")


@dataclass(frozen=True)
class RunRecord:
    """One finished run: where its pickle is, what it holds, and its summary row."""

    path: Path
    results: dict[str, Any]
    row: dict[str, Any]

    @property
    def budget(self) -> tuple[Any, Any]:
        """(epochs, training examples): runs are compared only at equal budgets."""
        return self.row["epochs"], self.row["train_size"]


def collect(results_dir: str | Path) -> tuple[list[RunRecord], list[str]]:
    """Every results pickle under `results_dir` (recursively), sorted by path, and one
    warning per `.pickle` file that could not be used."""
    records, warnings = [], []
    for path in sorted(Path(results_dir).rglob("*.pickle")):
        try:
            results = load_results(path)
            records.append(RunRecord(path, results, summary_row(path, results)))
        except ResultsError as error:
            warnings.append(f"skipped {error}")
        except (KeyError, TypeError, ValueError) as error:
            warnings.append(f"skipped {path}: not a results file ({type(error).__name__}: {error})")
    return records, warnings


def noise_layer(config: dict) -> dict:
    """The noise layer's entry in a config's ``layers``."""
    for layer in config["layers"]:
        if isinstance(layer, dict) and layer.get("type") in CHANNELS:
            return layer
    raise ValueError("its config has no noise layer")


def summary_row(path: Path, results: dict[str, Any]) -> dict[str, Any]:
    """The CSV row of one run: its identity, its budget, and every scalar test_* score."""
    config = results["config"]
    layer = noise_layer(config)
    multiplicative = layer.get("layer_kwargs", {}).get("noise") == "multiplicative"
    source = str(results.get("config_source", "unknown"))
    stem = "inline" if source.startswith("inline") else Path(source).stem
    dataset = results.get("dataset") or {}
    row: dict[str, Any] = {
        "name": path.stem,
        "config": "inline JSON config" if stem == "inline" else Path(source).name,
        "method": stem + (" (multiplicative)" if multiplicative else ""),
        "channel": CHANNELS[layer["type"]].kind,
        "marginal": marginal_name([loss["type"] for loss in config["losses"]]),
        "dataset": dataset.get("name"),
        "beta": config.get("beta"),
        "seed": results.get("seed"),
        "epochs": config.get("epochs"),
        "train_size": dataset.get("train_size"),
        "test_size": dataset.get("test_size"),
        "test_rate": results["test_rate"],
        "test_distortion": results["test_distortion"],
        "test_elbo": results["test_elbo"],
        "train_seconds": float(sum(results["epoch_time"])) if "epoch_time" in results else None,
    }
    for key in sorted(results):
        if key.startswith("test_") and key not in row and _is_number(results[key]):
            row[key] = results[key]
    return row


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def write_csv(records: Iterable[RunRecord], path: Path) -> None:
    """One row per run; the base columns, then every other test_* score any run has.
    Floats are written with repr, so that they read back exactly."""
    records = list(records)
    extra = sorted({key for record in records for key in record.row} - set(BASE_COLUMNS))
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=[*BASE_COLUMNS, *extra], restval="")
        writer.writeheader()
        for record in records:
            writer.writerow({key: _csv_value(value) for key, value in record.row.items()})


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---- groups over seeds ----------------------------------------------------------------


@dataclass
class Group:
    """The runs of one method at one β on one dataset with one budget; they differ by seed."""

    dataset: str
    method: str
    channel: str
    marginal: str
    epochs: Any
    train_size: Any
    beta: float | None
    records: list[RunRecord] = field(default_factory=list)

    def stats(self, column: str) -> tuple[float, float | None, int]:
        """(mean, sample standard deviation or None for one run, number of runs) of a
        column; -ELBO is asked for as "neg_elbo"."""
        values = np.array([self._value(record, column) for record in self.records], dtype=np.float64)
        std = float(values.std(ddof=1)) if len(values) > 1 else None
        return float(values.mean()), std, len(values)

    @staticmethod
    def _value(record: RunRecord, column: str) -> float:
        if column == "neg_elbo":
            return -float(record.row["test_elbo"])
        return float(record.row[column])

    @property
    def seeds(self) -> list:
        return sorted(record.row["seed"] for record in self.records)


def group_runs(records: Iterable[RunRecord]) -> list[Group]:
    """Runs grouped by (dataset, method, budget, β), sorted by dataset, channel kind
    (Echo, Gaussian, IAF), method, budget and β."""
    groups: dict[tuple, Group] = {}
    for record in records:
        row = record.row
        key = (row["dataset"], row["method"], row["epochs"], row["train_size"], row["beta"])
        if key not in groups:
            groups[key] = Group(row["dataset"], row["method"], row["channel"], row["marginal"],
                                row["epochs"], row["train_size"], row["beta"])
        groups[key].records.append(record)
    return sorted(groups.values(), key=_group_order)


def _group_order(group: Group) -> tuple:
    kind = CHANNEL_ORDER.index(group.channel) if group.channel in CHANNEL_ORDER else len(CHANNEL_ORDER)
    beta = math.inf if group.beta is None else group.beta
    return (str(group.dataset), kind, group.method, str(group.epochs), str(group.train_size), beta)


def curve_label(group: Group, several_budgets: bool) -> str:
    """A method's name in legends, with its budget when a dataset has runs of several."""
    if not several_budgets:
        return group.method
    return f"{group.method} ({group.epochs} epochs, {group.train_size} train)"


def format_stat(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


# Scores of evaluate.py (or run.py --iw) that the table shows when a dataset's runs have them.
OPTIONAL_COLUMNS = (
    ("test_nll_iw", "NLL (IW)"),
    ("test_mutual_information", "I(X;Z)"),
    ("test_marginal_gap", "marginal gap"),
    ("test_active_units", "active units"),
)


def _cell(group: Group, column: str) -> str:
    key = "test_elbo" if column == "neg_elbo" else column
    if not all(key in record.row for record in group.records):
        return "–"
    return format_stat(*group.stats(column)[:2])


def write_markdown(groups: list[Group], path: Path) -> None:
    """Per dataset, a table of method × β: mean ± standard deviation over seeds of the test
    rate, distortion and -ELBO, in nats per example, and of the importance-weighted NLL,
    I(X;Z), marginal gap and active units where runs have them."""
    lines = [
        "# Test rate, distortion and -ELBO",
        "",
        "Nats per example, on the test set: mean ± sample standard deviation over seeds "
        "(a single value where a group has one run). The rate is I(X;Z) for Echo and "
        "E KL(q(z|x) ‖ p(z)) under the marginal for the other channels; -ELBO = rate + distortion. "
        "Where measured: NLL (IW) is the importance-weighted negative log-likelihood (K in "
        "summary.csv), I(X;Z) the estimated mutual information (exact for Echo), the marginal "
        "gap rate − I(X;Z), and the active units the latent dimensions with Cov_x E[z|x] > 0.01.",
    ]
    for dataset in dict.fromkeys(group.dataset for group in groups):
        members = [g for g in groups if g.dataset == dataset]
        optional = [(key, title) for key, title in OPTIONAL_COLUMNS if any(key in r.row for g in members for r in g.records)]
        titles = ["rate", "distortion", "-ELBO", *(title for _, title in optional)]
        lines += ["", f"## {dataset}", "",
                  "| method | channel | marginal | epochs | train size | β | seeds | " + " | ".join(titles) + " |",
                  "|---|---|---|---:|---:|---:|---|" + "---:|" * len(titles)]
        for group in members:
            cells = [_cell(group, column) for column in ("test_rate", "test_distortion", "neg_elbo", *(k for k, _ in optional))]
            beta = "config" if group.beta is None else f"{group.beta:g}"
            seeds = ", ".join(str(seed) for seed in group.seeds)
            lines.append(f"| {group.method} | {group.channel} | {group.marginal} | {group.epochs} | "
                         f"{group.train_size} | {beta} | {seeds} | {' | '.join(cells)} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
