"""One run: from a config and its options to saved results, and back.

- `train_and_evaluate(config, options)`: train, evaluate and save one run as `run.py`
  does; returns the results dict (nats per example).
- `load_run(path)`: a finished run's results, config, trained model and history.
- `RunOptions`: `run.py`'s flags as a dataclass.

Modules: `train` (the run from start to saved results), `training` (its epochs), `data`,
`evaluation` and `likelihood` (scores), `checkpoints`, `epoch_csv`, `results` (the files),
`record` (what the results hold), `finished` (reading a run back), `options`, `signals`,
`errors`, and `console` and `floating_point` (the process's set-up, which must come
before TensorFlow is imported: hence the names above are imported on first use).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC = {
    "train_and_evaluate": "experiment.train",
    "load_run": "experiment.finished",
    "FinishedRun": "experiment.finished",
    "RunOptions": "experiment.options",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'experiment' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
