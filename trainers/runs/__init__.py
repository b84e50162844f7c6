"""The runs layer: results store, background jobs (local processes or a Ray cluster), sweeps.

Sits between the engine (`trainers`) and the UI; knows nothing of Streamlit. Imports are lazy so
that `import trainers.runs.backends.ray_task` on a Ray worker needs neither diskcache nor the rest.

    from trainers.runs import Store, submit, cancel, ensure_supervisor
"""

from __future__ import annotations

from typing import Any

__all__ = ["Store", "submit", "cancel", "ensure_supervisor", "load_settings", "Settings"]

_WHERE = {
    "Store": ".store",
    "submit": ".jobs",
    "cancel": ".jobs",
    "ensure_supervisor": ".supervisor",
    "load_settings": ".settings",
    "Settings": ".settings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(name)
