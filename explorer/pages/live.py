"""Live: every queued and running job, and the curve of the one in focus, redrawn every couple of
seconds by a fragment (the rest of the page, and the other pages, never wait for it)."""

from __future__ import annotations

import time

import streamlit as st

from explorer import runs_api
from explorer.components.run_card import run_card
from explorer.figures import curve_frame, curve_figure, group_curves
from explorer.guard import page_guard
from explorer.pages_common import lr_drops
from explorer.settings import REFRESH_S

RECENT_S = 15 * 60  # finished runs stay on this page for a while, so the end is seen


def focus_curve(records: list[dict]) -> None:
    keys = [r["key"] for r in records]
    by_key = {r["key"]: r for r in records}
    if st.session_state.get("live_focus") not in keys:
        st.session_state["live_focus"] = keys[0]
    key = st.selectbox("Curve of", keys, key="live_focus",
                       format_func=lambda k: f"{by_key[k].get('label')} · seed "
                                             f"{(by_key[k].get('config') or {}).get('seed', '?')} · key {k}")
    rec = by_key[key]
    frame = curve_frame(runs_api.curve(rec))
    curves = group_curves({rec.get("label") or key: [frame]})
    ref = runs_api.reference(rec.get("config") or {})
    refs = {rec.get("label") or key: ref.reported} if ref is not None and ref.reported is not None else {}
    fig = curve_figure(curves, lr_drops=lr_drops(rec.get("config") or {}), references=refs,
                       title=f"{rec.get('label')} — {rec['status']}",
                       x_total=(rec.get("config") or {}).get("iterations"))
    st.plotly_chart(fig, key="live_chart")
    if frame.empty:
        st.caption("The first points appear after the first logging interval."
                   if rec["status"] in ("queued", "running") else "This run recorded no curve points.")


@st.fragment(run_every=REFRESH_S)
def live_view() -> None:
    with page_guard("live"):
        records = runs_api.list_runs()
        active = [r for r in records if r.get("status") in ("queued", "running")]
        now = time.time()
        recent = [r for r in records if r.get("status") not in ("queued", "running")
                  and now - float(r.get("updated_at") or 0) < RECENT_S][:5]
        if not active and not recent:
            st.info("No job is queued or running.")
            st.page_link("explorer/pages/design.py", label="Design and launch some runs",
                         icon=":material/tune:")
            return
        st.caption(f"{sum(r['status'] == 'running' for r in active)} running · "
                   f"{sum(r['status'] == 'queued' for r in active)} queued · refreshed every "
                   f"{REFRESH_S:g} s")
        for rec in active:
            run_card(rec)
        if recent:
            st.markdown("**Finished in the last 15 minutes**")
            for rec in recent:
                run_card(rec)
        focus_curve(active + recent)


st.title("Live")
live_view()
