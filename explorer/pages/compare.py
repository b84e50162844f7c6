"""Compare: overlay runs or seed groups (median with a min-max band), smoothing, log axes, the
paper's number for the same row on the chart and in a table beside ours; CSV and PNG downloads.
The selection and the view options live in the URL, so a link shows the same comparison."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from explorer import runs_api
from explorer.components import reference_view
from explorer.components.run_tools import differs_view, manage_view
from explorer.figures import (
    X_AXES,
    assign_colors,
    curve_figure,
    curve_frame,
    display_table,
    group_curves,
    results_table,
)
from explorer.guard import page_guard
from explorer.pages_common import lr_drops, paper_row_for
from trainers.core import presets
from trainers.core.results import FINISHED, group_key, group_label

# ours beside the paper right after the run's name: visible without scrolling at 1400 px
TABLE_COLUMNS = {
    "run": st.column_config.TextColumn("run", width="medium"),
    "ours": st.column_config.TextColumn("ours: median %"),
    "paper": st.column_config.TextColumn("paper %"),
    "difference": st.column_config.TextColumn("ours − paper"),
    "n": st.column_config.NumberColumn("n runs"),
    "min": st.column_config.TextColumn("min %"),
    "max": st.column_config.TextColumn("max %"),
    "dataset": st.column_config.TextColumn("dataset"),
    "iterations": st.column_config.NumberColumn("iterations"),
    "note": st.column_config.TextColumn("note", width="large"),
}


def png_bytes(fig) -> bytes | None:
    """A PNG of the figure when kaleido is installed; else None (the chart's camera button works)."""
    try:
        return fig.to_image(format="png", width=1200, height=560, scale=2)
    except Exception:  # noqa: BLE001 - kaleido missing or without a browser
        return None


def share_link() -> None:
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    try:
        base = st.context.url or ""
    except Exception:  # noqa: BLE001
        base = ""
    query = urlencode(params, doseq=True)
    with st.popover("Share", icon=":material/link:"):
        st.caption("This comparison's address (the selection and options are in it):")
        st.code(f"{base}?{query}" if query else (base or "(this page's address)"), language=None)


def group_picker(groups: dict, labels: dict) -> list[str]:
    """Multiselect of seed groups, mirrored in the URL as ?g=<group key>&g=... (short, stable keys;
    widget binding would put the long labels in the URL)."""
    if "compare_groups" not in st.session_state:
        st.session_state["compare_groups"] = [g for g in st.query_params.get_all("g") if g in groups]
    else:  # a group can disappear (deleted runs): keep the widget's value valid
        st.session_state["compare_groups"] = [g for g in st.session_state["compare_groups"] if g in groups]
    chosen = st.multiselect(
        "Runs (seeds grouped)",
        list(groups),
        format_func=lambda g: labels[g],
        key="compare_groups",
        persist_state="session",
        placeholder="All finished runs: choose some to plot",
    )
    if chosen:
        st.query_params["g"] = chosen
    elif "g" in st.query_params:
        del st.query_params["g"]
    return chosen


def body() -> None:
    records = [r for r in runs_api.list_runs() if r.get("config")]
    c0, c1 = st.columns([4, 1], vertical_alignment="bottom")
    with c1:
        include_running = st.toggle("include running", key="running", bind="query-params")
    shown = [r for r in records if r.get("status") in FINISHED or (include_running and r.get("status") == "running")]
    if not shown:
        reference_view.first_start()  # the shipped reference runs, so there is something real to compare
        st.info("No finished run yet. Launch one on Design & launch; its row appears here when it ends.")
        st.page_link("explorer/pages/design.py", label="Design & launch", icon=":material/tune:")
        return
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in shown:
        groups.setdefault(group_key(r["config"]), []).append(r)
    labels = {
        g: f"{group_label(rs[0])} (n={len(rs)})"
        + "".join(f" #{t}" for t in sorted({t for r in rs for t in r.get("tags") or []}))
        for g, rs in groups.items()
    }
    with c0:
        chosen = group_picker(groups, labels)
    selected = [g for g in chosen if g in groups]
    # nothing chosen: plot the latest 4 groups (records come newest first), tabulate everything
    chosen = selected or list(groups)[:4]

    o0, o1, o2, o3, o4, o5 = st.columns(6)
    x = o0.selectbox("x axis", list(X_AXES), format_func=lambda k: X_AXES[k], key="x", bind="query-params")
    band = o1.toggle("seeds: median + band", value=True, key="band", bind="query-params")
    smoothing = o2.slider("smoothing", 0.0, 0.95, 0.0, 0.05, key="smooth", bind="query-params")
    log_loss = o3.toggle("log loss axis", key="logloss", bind="query-params")
    log_error = o4.toggle("log error axis", key="logerr", bind="query-params")
    with o5:
        share_link()

    series: dict[str, list] = {}
    refs: dict[str, float] = {}
    owner: dict[str, str] = {}  # series -> the run whose colour it wears (a group: its lowest seed)
    for g in chosen:
        rs = sorted(groups[g], key=lambda r: (r["config"].get("seed", 0), r["key"]))
        name = group_label(rs[0])
        ref = paper_row_for(rs[0]["config"])
        if band:
            series[name] = [curve_frame(runs_api.curve(r)) for r in rs]
            owner[name] = rs[0]["key"]
            if ref is not None and ref.reported is not None:
                refs[name] = ref.reported
        else:
            for run in rs:
                sname = f"{name} · seed {run['config'].get('seed', '?')}"
                series[sname] = [curve_frame(runs_api.curve(run))]
                owner[sname] = run["key"]
                if ref is not None and ref.reported is not None:
                    refs[sname] = ref.reported
    reference_view.overlay(series, refs)
    curves = group_curves(series, smoothing)
    by_run = assign_colors(list(owner.values()))
    colors = {name: by_run[k] for name, k in owner.items()}
    drops = sorted({tuple(lr_drops(groups[g][0]["config"])) for g in chosen})
    fig = curve_figure(
        curves,
        lr_drops=drops[0] if len(drops) == 1 else (),
        paper_errors=refs,
        log_loss=log_loss,
        log_error=log_error,
        colors=colors,
        x=x,
    )
    st.plotly_chart(
        reference_view.restyle(fig),
        key="compare_chart",
        config={"toImageButtonOptions": {"format": "png", "filename": "resnet-v2-comparison", "scale": 2}},
    )
    notes = ["Each run keeps its colour on every page (a seed group wears its lowest seed's)."]
    if smoothing:
        notes.append(
            "Smoothing applies to the training loss (the raw loss is drawn faintly behind); "
            "test errors are drawn as measured."
        )
    if len(drops) > 1:
        notes.append("The runs have different schedules: lr drops are not drawn.")
    if not selected:
        notes.append(f"Nothing chosen: the latest {len(chosen)} group(s) are plotted, every group is tabulated.")
    st.caption(" ".join(notes))

    st.subheader("Ours beside the paper")
    table = results_table([r for g in selected for r in groups[g]] if selected else shown, paper_row=paper_row_for)
    st.dataframe(
        display_table(table),
        hide_index=True,
        width="stretch",
        column_config=TABLE_COLUMNS,
        column_order=list(TABLE_COLUMNS),
        key="compare_table",
    )
    st.caption(
        "Test error %, median of n runs (the paper: median of 5). \"fail\": above 20% after the "
        "paper's full 64k-iteration schedule (its convention); shorter runs show their number. "
        "Runs on another dataset or schedule than the paper's are marked."
    )
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Table (CSV)",
        table.to_csv(index=False),
        "resnet-v2-results.csv",
        "text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
    d2.download_button(
        "Curves (CSV)",
        curves.to_csv(index=False),
        "resnet-v2-curves.csv",
        "text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
    png = png_bytes(fig)
    if png:
        d3.download_button(
            "Chart (PNG)", png, "resnet-v2-comparison.png", "image/png", icon=":material/download:", on_click="ignore"
        )
    else:
        d3.caption("Chart as PNG: the camera button in the chart's toolbar.")

    with st.expander("What differs between two runs", icon=":material/difference:"):
        differs_view(records)
    with st.expander("Tag or delete runs", icon=":material/sell:"):
        manage_view(records)


st.title("Compare")
with page_guard("compare"):
    body()
    with st.expander("Table 5 (ImageNet, single-crop validation error): the paper's reference rows, not trained here"):
        st.dataframe(pd.DataFrame(presets.table5_rows()), hide_index=True)
        st.caption(presets.TABLE5_NOTE)
