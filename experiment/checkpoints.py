"""Per-epoch checkpoints of a run, for exact resumption after a crash, a kill or Ctrl-C.

A run's checkpoints live in ``<results-dir>/<filename>.checkpoint/``. The checkpoint of
epoch k (k epochs finished) is two files:

- ``epoch-000k.weights.h5``: every weight of the model and the state of its optimizer(s)
  (`keras.Model.save_weights` saves the optimizers it holds as attributes with it);
- ``epoch-000k.state.pickle``: the `TrainingState`: k, the history so far (every logged
  list, ``lr``, ``epoch_time``), the options that shape training (its fingerprint), and
  the SHA-256 of the weights file.

Each file is written atomically (temporary name, fsync, rename) and the state file last,
so the state file is the commit mark: a checkpoint exists once its state file does, and a
kill at any moment leaves the previous checkpoint whole. The newest two are kept. Nothing
random needs saving: each epoch's data order and noise are seeded from (seed, epoch) by
`run.py`, so an epoch does not depend on how the process got to it.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from experiment.results import write_atomically

KEEP = 2
_STATE = re.compile(r"^epoch-(\d{4,})\.state\.pickle$")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names it and says why."""


@dataclass
class TrainingState:
    """How far a run got: `epoch` epochs finished, with their history."""

    fingerprint: dict[str, Any]
    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)

    def after_epoch(self, logs: dict[str, float]) -> TrainingState:
        """The state one epoch later, with that epoch's values (loss terms, lr, epoch_time, ...)."""
        history = {name: list(values) for name, values in self.history.items()}
        for name, value in logs.items():
            history.setdefault(name, []).append(float(value))
        return TrainingState(self.fingerprint, self.epoch + 1, history)


def checkpoint_dir(results_dir: str | Path, filename: str) -> Path:
    return Path(results_dir) / f"{filename}.checkpoint"


def save_checkpoint(directory: Path, model: keras.Model, state: TrainingState) -> None:
    """Write the checkpoint of `state.epoch` (weights, then state), and drop all but the
    newest `KEEP`."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"epoch-{state.epoch:04d}"
    weights = directory / f"{stem}.weights.h5"
    write_atomically(weights, lambda temporary: model.save_weights(str(temporary)), suffix=".weights.h5")
    payload = {
        "fingerprint": state.fingerprint,
        "epoch": state.epoch,
        "history": state.history,
        "weights_sha256": _sha256(weights),
    }
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    write_atomically(directory / f"{stem}.state.pickle", lambda temporary: temporary.write_bytes(data))
    for old in checkpointed_epochs(directory)[:-KEEP]:
        for path in (directory / f"epoch-{old:04d}.state.pickle", directory / f"epoch-{old:04d}.weights.h5"):
            path.unlink(missing_ok=True)


def restore_latest(directory: Path, model: keras.Model, fingerprint: dict[str, Any]) -> tuple[TrainingState | None, list[str]]:
    """Load the newest usable checkpoint into `model` and its optimizer(s): its state (None
    when there is none) and a note for each newer checkpoint that was unusable (corrupt
    or partial), which is skipped for the one before it. A checkpoint written with another
    fingerprint raises CheckpointError: two runs must not be mixed."""
    notes: list[str] = []
    for epoch in reversed(checkpointed_epochs(directory)):
        state_path = directory / f"epoch-{epoch:04d}.state.pickle"
        try:
            payload = _read_state(state_path)
        except CheckpointError as error:
            notes.append(str(error))
            continue
        _check_fingerprint(directory, payload["fingerprint"], fingerprint)
        try:
            _load_into(model, directory / f"epoch-{epoch:04d}.weights.h5", payload["weights_sha256"])
        except CheckpointError as error:
            notes.append(str(error))
            continue
        return TrainingState(fingerprint, payload["epoch"], payload["history"]), notes
    return None, notes


def remove_checkpoints(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def checkpointed_epochs(directory: Path) -> list[int]:
    """The epochs with a committed checkpoint state in `directory`, ascending."""
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for m in map(_STATE.match, (p.name for p in directory.iterdir())) if m)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        payload = pickle.loads(path.read_bytes())
    except Exception as error:  # a damaged file can raise almost anything
        raise CheckpointError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    keys = {"fingerprint", "epoch", "history", "weights_sha256"}
    if not isinstance(payload, dict) or not keys <= set(payload):
        raise CheckpointError(f"{path}: not a checkpoint state")
    return payload


def _check_fingerprint(directory: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    differing = sorted(key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key))
    if differing:
        details = "; ".join(f"{key}: {_brief(saved.get(key))} there, {_brief(current.get(key))} now" for key in differing)
        raise CheckpointError(
            f"{directory} was written by a different run ({details}); run the original command to resume it, "
            f"or pass --overwrite to start afresh"
        )


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _load_into(model: keras.Model, weights: Path, sha256: str) -> None:
    """The model's weights and its optimizers' state from a checkpoint's weights file."""
    if not weights.is_file() or _sha256(weights) != sha256:
        raise CheckpointError(f"{weights}: missing or not the file its state was written with")
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{weights}: does not fit this model ({error})") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
