"""Where the explorer keeps things. Paths are resolved against the repository root, so the app
works whatever directory `streamlit run` was started from."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE_ENV = "RESNET_EXPLORER_CACHE"
# The offline copy of CIFAR-10 beside this checkout (see ../shared/data/README.md).
JPEG_COPY = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
REFRESH_S = 2.0  # how often live views redraw themselves


def cache_dir() -> str:
    """RESNET_EXPLORER_CACHE, else `cache/` in the repository (git-ignored)."""
    p = Path(os.environ.get(CACHE_ENV, "cache")).expanduser()
    return str(p if p.is_absolute() else ROOT / p)


def jpeg_copy_spec() -> str | None:
    """`folder:` spec of the shared CIFAR-10 JPEG copy, relative to the repo when it sits beside it."""
    if not JPEG_COPY.exists():
        return None
    return "folder:" + os.path.relpath(JPEG_COPY, ROOT)
