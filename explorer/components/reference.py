"""Reference runs in the UI: curves trained by this engine and shipped with the explorer
(explorer/reference/, trainers/core/reference.py), so Compare has something real to show before
the user trains anything.

A reference run is never one of the user's runs: it is read from the pack, not the store; its
series is named "reference · ..." and drawn in the reference colours (greys and browns, never the
user palette); a user's run of the same config keeps its own record, label and colour. Reference
runs are chosen in the URL (?ref=KEY&ref=KEY), so the Learn page can link to the curves that show
a concept, and they can be switched off.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer import runs_api
from trainers.core import presets
from trainers.core import reference as ref
from explorer.figures import curve_figure, curve_frame, dataset_short, group_curves
from explorer.guard import md_escape
from explorer.pages_common import lr_drops

PREFIX = "reference · "
# Muted, distinct from figures.PALETTE: a reference curve never looks like one of the user's.
COLOURS = ("#4D4D4D", "#A0522D", "#8C8C8C", "#6B4C9A", "#B8860B", "#2F4F4F", "#BC8F8F", "#708090")
COMPARE_PAGE = "explorer/pages/compare.py"


def pack() -> dict[str, Any]:
    doc, problems = runs_api.reference_pack()
    for p in problems:
        st.warning(md_escape(f"A reference pack was skipped: {p}"), icon=":material/warning:")
    return doc


def device_short(run: dict[str, Any]) -> str:
    p = run["provenance"]
    if p.get("device") == "cpu" or str(p.get("device_name", "")).startswith("CPU"):
        n = p.get("threads")
        return f"CPU, {n} thread{'s' if n != 1 else ''}" if n else "CPU"
    return str(p.get("device_name") or p.get("device"))


def series_name(run: dict[str, Any]) -> str:
    return f"{PREFIX}{run['label']} ({run['schedule']}, {device_short(run)})"


def paper_text(run: dict[str, Any]) -> tuple[str, float | None]:
    """('6.37 (ResNet-110)', 6.37) — the paper's number for the run's variant, and where it is
    the same depth the number itself for the chart's line."""
    row, same_depth = ref.paper_number(run)
    if row is None:
        return "", None
    where = "" if same_depth else f" (ResNet-{row.template.get('depth', 110)})"
    return f"{row.paper_text()}{where}", (row.reported if same_depth else None)


def runs_from_url(doc: dict[str, Any]) -> list[dict[str, Any]]:
    by_key = ref.best_runs(doc)
    return [by_key[k] for k in dict.fromkeys(st.query_params.get_all("ref")) if k in by_key]


def frames(runs: list[dict[str, Any]]) -> dict[str, list[pd.DataFrame]]:
    return {series_name(r): [curve_frame(r["curve"])] for r in runs}


def restyle(fig: go.Figure) -> go.Figure:
    """Reference series in the reference colours (in order of appearance), user series untouched."""
    order: dict[str, str] = {}
    for trace in fig.data:
        group = trace.legendgroup or ""
        if not group.startswith(PREFIX):
            continue
        c = order.setdefault(group, COLOURS[len(order) % len(COLOURS)])
        if trace.fill == "toself":
            continue
        trace.line.color = c
        if trace.marker is not None:
            trace.marker.color = c
    return fig


def table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in runs:
        p = r["provenance"]
        paper, _ = paper_text(r)
        res = r["result"]
        rows.append({
            "run": series_name(r), "test error %": res.get("test_error"), "paper %": paper,
            "iterations": res.get("iterations"), "schedule": r["schedule"],
            "dataset": dataset_short(r["config"]["dataset"]) + (
                f" ({r['config']['test_size']:,} test images)" if r["config"].get("test_size") else ""),
            "device": p.get("device_name"), "wall time": f"{p['wall_time_s'] / 60:.1f} min",
            "images/s": round(p["images_per_s"]) if p.get("images_per_s") else None,
            "torch": p.get("torch") + (f", CUDA {p['cuda']}" if p.get("cuda") else ""),
            "commit": p.get("code_version"), "key": r["key"],
        })
    return pd.DataFrame(rows)


def chart(runs: list[dict[str, Any]], key: str) -> None:
    curves = group_curves(frames(runs))
    refs = {series_name(r): paper_text(r)[1] for r in runs if paper_text(r)[1] is not None}
    drops = {tuple(lr_drops(r["config"])) for r in runs}
    fig = curve_figure(curves, lr_drops=next(iter(drops)) if len(drops) == 1 else (), references=refs)
    st.plotly_chart(restyle(fig), key=key)


def first_start() -> bool:
    """Compare with no finished run of the user's: the pack's best teaching comparison (or the runs
    a Learn link chose), the paper's numbers beside it, and where every curve came from. False if
    the pack has nothing to show."""
    doc = pack()
    runs = runs_from_url(doc) or ref.teaching_comparison(doc)
    if not runs:
        return False
    if not st.toggle("Show the reference runs", value=True, key="ref_show"):
        return True
    st.markdown("**Reference runs**: trained by this engine and shipped with the explorer, so there is "
                "something real to compare before you train. They are not yours and never mix with your "
                "runs; your own run of the same config is listed as yours.")
    chart(runs, key="reference_chart")
    paper_shown = any(paper_text(r)[0] for r in runs)
    st.dataframe(table(runs), hide_index=True, width="stretch", key="reference_table")
    notes = ["Dashed: training loss; solid: test error."]
    if paper_shown:
        notes.append("paper %: He et al. 2016, median of 5 runs of the full 64k-iteration schedule"
                     + (" on ResNet-110, the depth in brackets: shallower, shorter reference runs show "
                        "the direction of a difference, not the paper's numbers" if any(
                            not ref.paper_number(r)[1] for r in runs) else "")
                     + "; on the JPEG copy of CIFAR-10 the comparison is indicative only.")
    schedules = {r["schedule"] for r in runs}
    notes += [f"{s}: {presets.SCHEDULE_NOTES[s]}." for s in sorted(schedules)
              if s in presets.SCHEDULE_NOTES]
    st.caption(" ".join(notes))
    return True


def overlay(series: dict[str, list], references: dict[str, float]) -> None:
    """On Compare with the user's runs: reference runs to draw beside them (off unless chosen)."""
    doc = pack()
    by_key = ref.best_runs(doc)
    if not by_key:
        return
    chosen = st.multiselect("Reference runs (shipped with the explorer, not yours)", list(by_key),
                            default=[k for k in dict.fromkeys(st.query_params.get_all("ref")) if k in by_key],
                            format_func=lambda k: series_name(by_key[k]), key="ref_overlay",
                            placeholder="none")
    for k in chosen:
        r = by_key[k]
        series[series_name(r)] = [curve_frame(r["curve"])]
        number = paper_text(r)[1]
        if number is not None:
            references[series_name(r)] = number


def concept_link(concept: str) -> None:
    """On Learn: a link to the reference curves that show `concept`, if the pack has them."""
    runs = ref.concept_runs(pack(), concept)
    if not runs:
        return
    a, b = runs
    label = f"See {concept} trained: reference curves, {a['label']} vs {b['label']} ({a['schedule']}, {device_short(a)})"
    st.page_link(COMPARE_PAGE, label=md_escape(label),
                 icon=":material/show_chart:", query_params={"ref": [a["key"], b["key"]]})
