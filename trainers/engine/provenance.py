"""Where a result came from: the code version that produced it."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # trainers/: core, engine and runs


@functools.cache
def code_version() -> str:
    """`git:<sha>[-dirty]` when run from a checkout, else a hash of the engine's source files
    (the GPU machine and Ray workers may run a copy without .git)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", str(PACKAGE_DIR)],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"git:{sha}" + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        h = hashlib.sha256()
        for p in sorted(PACKAGE_DIR.rglob("*.py")):
            h.update(p.read_bytes())
        return f"src:{h.hexdigest()[:12]}"
