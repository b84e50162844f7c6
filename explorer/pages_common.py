"""Small helpers several pages share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainers.core.config import RunConfig
from trainers.core.presets import PaperRow, paper_row


def lr_drops(config: Mapping[str, Any]) -> list[int]:
    """Iterations of the lr /10 steps of a run's config ([] for an old, unreadable config)."""
    try:
        return list(RunConfig.from_dict(dict(config)).milestone_iterations())
    except Exception:  # noqa: BLE001
        return []


def paper_row_for(config: Mapping[str, Any]) -> PaperRow | None:
    """The paper's row for a run's config (seed and schedule ignored), or None (also for an old
    record whose config no longer validates)."""
    try:
        return paper_row(RunConfig.from_dict(dict(config)))
    except Exception:  # noqa: BLE001
        return None
