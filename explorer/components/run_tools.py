"""Compare's run tools: what differs between two runs' configs, tags, and deleting runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from explorer import polling, runs_api
from trainers.core.results import shown_status


def config_diff(a: Mapping, b: Mapping) -> pd.DataFrame:
    """The fields where two configs differ: field, first run's value, second run's value."""
    rows = [
        {"field": k, "first": str(a.get(k, "—")), "second": str(b.get(k, "—"))}
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
    return pd.DataFrame(rows, columns=["field", "first", "second"])


def run_name(rec: Mapping) -> str:
    tags = "".join(f" #{t}" for t in rec.get("tags") or [])
    return (
        f"{rec.get('label') or rec['key']} · seed {(rec.get('config') or {}).get('seed', '?')} · "
        f"{shown_status(rec)} · {rec['key'][:8]}{tags}"
    )


def differs_view(records: Sequence[Mapping[str, Any]]) -> None:
    by_key = {r["key"]: r for r in records}
    keys = list(by_key)
    if len(keys) < 2:
        st.caption("Two runs are needed to compare configs.")
        return
    c1, c2 = st.columns(2)
    a = c1.selectbox("First run", keys, index=0, format_func=lambda k: run_name(by_key[k]), key="diff_a")
    b = c2.selectbox("Second run", keys, index=1, format_func=lambda k: run_name(by_key[k]), key="diff_b")
    diff = config_diff(by_key[a].get("config") or {}, by_key[b].get("config") or {})
    if diff.empty:
        st.info("Same config (the same run)." if a == b else "The configs are identical.")
    else:
        st.dataframe(diff, hide_index=True, width="stretch", key="diff_table")


def manage_view(records: Sequence[Mapping[str, Any]]) -> None:
    """Tag or delete runs. Queued and running runs are not deleted: cancel them on Live first."""
    by_key = {r["key"]: r for r in records}
    chosen = st.multiselect("Runs", list(by_key), format_func=lambda k: run_name(by_key[k]), key="manage_runs")
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    tags = c1.text_input(
        "Tags (comma-separated; empty clears them)", key="manage_tags", placeholder="e.g. baseline, lr-check"
    )
    if c2.button("Set tags", key="manage_tag_go", disabled=not chosen, icon=":material/sell:"):
        for k in chosen:
            runs_api.tag(k, tags.split(","))
        polling.changed()
        st.toast(f"Tagged {len(chosen)} run(s)")
        st.rerun()
    active = [k for k in chosen if by_key[k].get("status") in ("queued", "running")]
    if active:
        st.warning(f"{len(active)} of them are queued or running: cancel them on Live before deleting.")
    sure = st.checkbox(
        "Delete the chosen runs with their curves (checkpoints stay on disk)",
        key="manage_sure",
        disabled=not chosen or bool(active),
    )
    if st.button(
        f"Delete {len(chosen)} run(s)",
        key="manage_delete_go",
        type="primary",
        disabled=not (chosen and sure) or bool(active),
        icon=":material/delete:",
    ):
        for k in chosen:
            runs_api.delete(k)
        polling.changed()
        for state in ("manage_runs", "manage_sure"):
            st.session_state.pop(state, None)
        st.toast(f"Deleted {len(chosen)} run(s)")
        st.rerun()
