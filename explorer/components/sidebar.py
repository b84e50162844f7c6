"""The sidebar's job counter: a fragment that refreshes itself on every page, so the user sees
that training goes on while they read the paper's diagrams or compare results. It reads the
store's index of active runs only (explorer/polling.py): cheap enough to run beside training."""

from __future__ import annotations

import streamlit as st

from explorer import polling
from explorer.app_settings import REFRESH_S

BADGE_EVERY_S = 2 * REFRESH_S  # a counter, not a chart: every few seconds is plenty


@st.fragment(run_every=BADGE_EVERY_S)
def jobs_badge() -> None:
    try:
        active = polling.active_runs()
    except Exception:  # noqa: BLE001 - the pages say what is wrong; the badge just stays quiet
        st.caption("Jobs: runs layer not available")
        return
    running = [r for r in active if r.get("status") == "running"]
    queued = sum(1 for r in active if r.get("status") == "queued")
    if not running and not queued:
        try:
            total = len(polling.all_runs())
        except Exception:  # noqa: BLE001
            total = 0
        st.caption(f"No job running · {total} runs in the cache")
        return
    st.caption(f"**{len(running)} running · {queued} queued**")
    for r in running[:3]:
        st.progress(min(1.0, float(r.get("progress") or 0.0)), text=(r.get("label") or r["key"])[:40])
    st.page_link("explorer/pages/live.py", label="Watch them live", icon=":material/monitoring:")
