"""Where dataset files are looked for: data_dir, then $ECHO_DATA_DIR, then system locations."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .registry import DatasetSpec, Layout

DATA_DIR_VARIABLE = "ECHO_DATA_DIR"

# Directories where distributions install datasets; Debian's dataset-fashion-mnist
# package puts Fashion-MNIST in /usr/share/datasets/fashion-mnist/.
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))


@dataclass(frozen=True)
class Root:
    """A data directory and why it is searched (e.g. '$ECHO_DATA_DIR')."""

    path: Path
    origin: str


@dataclass(frozen=True)
class Hit:
    """The files of one layout, found in ``directory``."""

    layout: Layout
    directory: Path
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class SearchResult:
    """The first hit (None if there is none) and one line per directory searched."""

    hit: Hit | None
    report: tuple[str, ...]


def search_roots(data_dir: str | os.PathLike | None) -> list[Root]:
    """The data directories to search, first one first, without duplicates."""
    candidates = []
    if data_dir is not None:
        candidates.append(Root(Path(data_dir).expanduser(), "data_dir argument"))
    from_environment = os.environ.get(DATA_DIR_VARIABLE)
    if from_environment:
        candidates.append(Root(Path(from_environment).expanduser(), f"${DATA_DIR_VARIABLE}"))
    candidates.extend(Root(path, "system location") for path in SYSTEM_DATA_DIRS)
    unique: dict[Path, Root] = {}
    for root in candidates:
        unique.setdefault(root.path.absolute(), root)
    return list(unique.values())


def search(spec: DatasetSpec, roots: list[Root]) -> SearchResult:
    """Looks for ``spec``'s files in each root's subdirectories; the first complete layout wins."""
    report = []
    for root in roots:
        for subdir in spec.subdirs:
            directory = root.path / subdir
            hit, status = _look_in(spec, directory)
            report.append(f"{directory} ({root.origin}): {status}")
            if hit is not None:
                return SearchResult(hit, tuple(report))
    return SearchResult(None, tuple(report))


def _look_in(spec: DatasetSpec, directory: Path) -> tuple[Hit | None, str]:
    try:
        if not directory.exists():
            return None, "does not exist"
        if not directory.is_dir():
            return None, "is not a directory"
        partial = []
        for layout in spec.layouts:
            found = [_first_file(directory, layout.accepted_names(file)) for file in layout.files]
            if all(found):
                return Hit(layout, directory, tuple(found)), f"found {layout.description}"
            if any(found):
                missing = [file for file, path in zip(layout.files, found) if path is None]
                partial.append(f"incomplete {layout.description}, missing {', '.join(missing)}")
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    return None, "; ".join(partial) or "no matching files"


def _first_file(directory: Path, names: tuple[str, ...]) -> Path | None:
    return next((directory / name for name in names if (directory / name).is_file()), None)
