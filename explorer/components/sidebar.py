"""The sidebar's job counter: a fragment that refreshes itself on every page, so the user sees
that training goes on while they read the paper's diagrams or compare results."""

from __future__ import annotations

import streamlit as st

from explorer import runs_api
from explorer.settings import REFRESH_S


@st.fragment(run_every=REFRESH_S)
def jobs_badge() -> None:
    try:
        runs = runs_api.list_runs()
    except Exception:  # noqa: BLE001 - the pages say what is wrong; the badge just stays quiet
        st.caption("Jobs: runs layer not available")
        return
    running = [r for r in runs if r.get("status") == "running"]
    queued = sum(1 for r in runs if r.get("status") == "queued")
    if not running and not queued:
        st.caption(f"No job running · {len(runs)} runs in the cache")
        return
    st.caption(f"**{len(running)} running · {queued} queued**")
    for r in running[:3]:
        st.progress(float(r.get("progress") or 0.0), text=(r.get("label") or r["key"])[:40])
    st.page_link("explorer/pages/live.py", label="Watch them live", icon=":material/monitoring:")
