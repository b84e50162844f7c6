"""Where a run's files are, torch-free: the project root and the path a `folder:` dataset names.

Relative paths are relative to the project root, not to whoever's working directory: the CLI, the
app and the detached workers must all read the same files for the same run key.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository: trainers/core/paths.py


def folder_path(spec: str) -> Path:
    """The absolute path of a `folder:PATH` dataset spec (PATH relative to the project root)."""
    raw = spec[len("folder:") :]
    if not raw:
        raise DataError("folder: needs a path, e.g. folder:/data/my-images or folder:images.tar.gz")
    path = Path(raw).expanduser()
    return (path if path.is_absolute() else PROJECT_ROOT / path).resolve()
