"""The live log of a run: ``<results-dir>/<filename>.csv``, one row per finished epoch.

Columns: ``epoch`` (1 for the first), ``loss``, ``rate``, ``distortion``, every loss term,
the ``val_*`` terms when the run validates, an Echo channel's health (``echo_*``, see
`experiment.health`), ``lr`` and ``epoch_time`` (seconds); losses in nats per example. A row is appended (and flushed) when an epoch's checkpoint has been
written, so ``tail -f`` follows training; when a run resumes, the file is rewritten from
the checkpoint's history, which drops the rows of any epoch that was not checkpointed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from experiment.results import write_atomically

_FIRST = ("loss", "rate", "distortion")
_LAST = ("lr", "epoch_time")
_HEALTH = "echo_"


def columns(history: dict[str, list[float]]) -> list[str]:
    """epoch, loss, rate, distortion, the other terms, their val_* twins, the channel's
    health, lr, epoch_time."""
    health = sorted(n for n in history if n.startswith(_HEALTH))
    others = sorted(n for n in history if n not in _FIRST + _LAST and not n.startswith(("val_", _HEALTH)))
    train = [n for n in _FIRST if n in history] + others
    validation = [f"val_{n}" for n in train if f"val_{n}" in history]
    return ["epoch", *train, *validation, *health, *(n for n in _LAST if n in history)]


def _rows(history: dict[str, list[float]], start: int = 0) -> str:
    names = columns(history)
    epochs = len(history["loss"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if start == 0:
        writer.writerow(names)
    for epoch in range(start, epochs):
        writer.writerow([epoch + 1] + [repr(history[name][epoch]) for name in names[1:]])
    return buffer.getvalue()


def rewrite(path: Path, history: dict[str, list[float]]) -> None:
    """The whole file for `history`, atomically; no file before the first epoch."""
    if not history:
        path.unlink(missing_ok=True)
        return
    text = _rows(history)
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def append_last(path: Path, history: dict[str, list[float]]) -> None:
    """Append the row of the last epoch of `history` (with the header if the file is empty)."""
    epochs = len(history["loss"])
    start = epochs - 1 if path.exists() and path.stat().st_size > 0 else 0
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(_rows(history, start))
        stream.flush()
