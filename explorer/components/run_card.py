"""One job as a card: name, state, progress bar with iterations, speed, ETA and device, cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from explorer import polling, runs_api
from explorer.figures import progress_text
from explorer.guard import md_escape
from trainers.core.results import shown_status

ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/play_circle:",
    "done": ":material/check_circle:",
    "fail": ":material/cancel:",
    "diverged": ":material/warning:",
    "error": ":material/error:",
    "cancelled": ":material/block:",
}
LOADING_TEXT = "starting: loading the dataset (decoding it takes ~25 s the first time) and building the network…"


def starting(rec: Mapping[str, Any]) -> bool:
    """Claimed by a worker that has not sent the engine's start event yet (data loading)."""
    return rec.get("status") == "running" and not rec.get("parameters") and not rec.get("iteration")


def run_card(rec: Mapping[str, Any], rate: dict | None = None) -> None:
    """`rate`: the run's average speed and ETA (figures.run_rate), steadier than the last window's."""
    status = shown_status(rec) or "?"  # a short run stored as "fail" reads "done"
    with st.container(border=True):
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        with c1:
            tags = " ".join(f"`#{t}`" for t in rec.get("tags") or [])
            st.markdown(
                f"{ICONS.get(status, '')} **{rec.get('label') or rec['key']}** · `{status}` · "
                f"seed {(rec.get('config') or {}).get('seed', '?')} · key `{rec['key']}` {tags}"
            )
            if status in ("queued", "running"):
                if status == "queued":
                    text = "waiting for a free device"
                elif starting(rec):
                    text = LOADING_TEXT
                else:
                    text = progress_text(rec, rate)
                if rec.get("cancel_requested"):
                    text += " · cancelling…"
                st.progress(min(1.0, max(0.0, float(rec.get("progress") or 0.0))), text=text)
                if disk := runs_api.disk_full_message():
                    st.warning(md_escape(disk))
            for note in rec.get("notes") or []:  # e.g. a checkpoint that did not fit, set aside
                st.caption(f":material/info: {md_escape(note)}")
            if status not in ("queued", "running"):
                result = rec.get("result") or {}
                err = result.get("test_error")
                if isinstance(err, (int, float)):
                    st.caption(
                        f"final test error {err:.2f}% after {int(result.get('iterations') or 0):,} "
                        f"iterations · {progress_text(rec, rate)}"
                    )
                if rec.get("error"):
                    st.error(
                        f"{md_escape(rec['error'])} — fix the cause, then launch it again from Design "
                        "(it resumes from its last checkpoint)."
                    )
        with c2:
            if status in ("queued", "running") and not rec.get("cancel_requested"):
                if st.button("Cancel", key=f"cancel_{rec['key']}", icon=":material/stop_circle:"):
                    runs_api.cancel(rec["key"])
                    polling.changed()
                    st.toast(f"Cancelling {rec.get('label')}: it checkpoints first, so launching it again resumes it.")
