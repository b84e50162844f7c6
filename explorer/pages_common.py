"""Small helpers several pages share."""

from __future__ import annotations

from explorer.runs_api import RunConfig


def lr_drops(config: dict) -> list[int]:
    """Iterations of the lr /10 steps of a run's config ([] for an old, unreadable config)."""
    try:
        return list(RunConfig.from_dict(config).milestone_iterations())
    except Exception:  # noqa: BLE001
        return []
