"""Live: every queued and running job, and their curves overlaid on one chart (W&B style), redrawn
every couple of seconds by a fragment (the rest of the page, and the other pages, never wait for
it). The fragment reads the store only (explorer/polling.py): it never imports the engine."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from explorer import polling, runs_api
from explorer.app_settings import REFRESH_S
from explorer.components.run_card import run_card
from explorer.figures import X_AXES, assign_colors, curve_figure, curve_frame, group_curves, run_rate
from explorer.guard import page_guard
from explorer.pages_common import lr_drops, paper_row_for
from trainers.core.records import RunRecord
from trainers.core.results import shown_status

RECENT_S = 15 * 60  # finished runs stay on this page for a while, so the end is seen


def series_name(rec: Mapping[str, Any]) -> str:
    return f"{rec.get('label') or rec['key']} · seed {(rec.get('config') or {}).get('seed', '?')}"


def recent_finished(active: Sequence[Mapping[str, Any]]) -> list[RunRecord]:
    """Runs that ended in the last RECENT_S. Runs this session saw active are re-read now, so a run
    that just ended shows its end at once; the others come from the few-seconds-old list."""
    now = time.time()
    active_keys = {r["key"] for r in active}
    seen = st.session_state.get("_live_seen_active", [])
    st.session_state["_live_seen_active"] = list(active_keys | set(seen))[-50:]
    fresh = [r for r in (runs_api.get(k) for k in seen if k not in active_keys) if r]
    by_key = {r["key"]: r for r in polling.all_runs() if r["key"] not in active_keys}
    by_key.update({r["key"]: r for r in fresh if r.get("status") not in ("queued", "running")})
    recent = [
        r
        for r in by_key.values()
        if r.get("status") not in ("queued", "running") and now - float(r.get("updated_at") or 0) < RECENT_S
    ]
    return sorted(recent, key=lambda r: float(r.get("updated_at") or 0), reverse=True)[:5]


def curves_chart(records: Sequence[Mapping[str, Any]], curves: dict[str, list[dict]]) -> None:
    """All running runs overlaid (or the ones chosen), each in its own colour."""
    by_key = {r["key"]: r for r in records}
    running = [r["key"] for r in records if r.get("status") == "running"]
    focus = st.session_state.get("live_focus")
    default = running or ([focus] if focus in by_key else [records[0]["key"]])
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    chosen = c1.multiselect(
        "Curves",
        list(by_key),
        key="live_curves",
        format_func=lambda k: f"{series_name(by_key[k])} · {shown_status(by_key[k])}",
        placeholder=("every running run" if running else "the latest run") + " (choose runs to plot them instead)",
    )
    x = c2.selectbox("x axis", list(X_AXES), format_func=lambda k: X_AXES[k], key="live_x")
    keys = [k for k in chosen if k in by_key] or default
    series, refs = {}, {}
    for k in keys:
        rec = by_key[k]
        name = series_name(rec)
        events = curves[k] if k in curves else runs_api.curve(rec)
        series[name] = [curve_frame(events)]
        ref = paper_row_for(rec.get("config") or {})
        if ref is not None and ref.reported is not None:
            refs[name] = ref.reported
    colors = {series_name(by_key[k]): c for k, c in assign_colors(keys).items()}
    drops = {tuple(lr_drops(by_key[k].get("config") or {})) for k in keys}
    totals = {(by_key[k].get("config") or {}).get("iterations") for k in keys}
    title = (
        f"{len(keys)} runs" if len(keys) > 1 else f"{by_key[keys[0]].get('label')} — {shown_status(by_key[keys[0]])}"
    )
    fig = curve_figure(
        group_curves(series),
        lr_drops=next(iter(drops)) if len(drops) == 1 else (),
        paper_errors=refs,
        title=title,
        colors=colors,
        x=x,
        x_total=max((t for t in totals if t), default=None),
    )
    st.plotly_chart(fig, key="live_chart")
    if all(not len(f[0]) for f in series.values()):
        st.caption(
            "The first points appear after the first logging interval."
            if any(by_key[k]["status"] in ("queued", "running") for k in keys)
            else "This run recorded no curve points."
        )


CHART_EVERY_S = 3 * REFRESH_S  # a chart costs far more to redraw than a progress bar


@st.fragment(run_every=REFRESH_S)
def live_cards() -> None:
    with page_guard("live"):
        active = polling.active_runs()
        recent = recent_finished(active)
        if not active and not recent:
            st.info("No job is queued or running.")
            st.page_link("explorer/pages/design.py", label="Design and launch some runs", icon=":material/tune:")
            return
        st.caption(
            f"{sum(r['status'] == 'running' for r in active)} running · "
            f"{sum(r['status'] == 'queued' for r in active)} queued · refreshed every "
            f"{REFRESH_S:g} s (the chart every {CHART_EVERY_S:g} s) · speed and ETA: averages "
            "over each run so far"
        )
        for rec in active:
            rate = None
            if rec.get("status") == "running":
                rate = run_rate(
                    runs_api.curve(rec), int((rec.get("config") or {}).get("batch_size") or 128), rec.get("total")
                )
            run_card(rec, rate)
        if recent:
            st.markdown("**Finished in the last 15 minutes**")
            for done in recent:  # finished curves are cached: the average costs nothing twice
                run_card(done, run_rate(runs_api.curve(done), int((done.get("config") or {}).get("batch_size") or 128)))


@st.fragment(run_every=CHART_EVERY_S)
def live_chart() -> None:
    with page_guard("live chart"):
        active = polling.active_runs()
        records = active + recent_finished(active)
        if records:
            curves_chart(records, {})


st.title("Live")
live_cards()
live_chart()
