"""Reference runs in the UI: curves trained by this engine and shipped with the explorer
(explorer/reference/, trainers/core/reference_packs.py), so Compare has something real to show before
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
from explorer.figures import curve_figure, curve_frame, group_curves
from explorer.guard import md_escape
from explorer.pages_common import lr_drops
from trainers.core import presets, separation
from trainers.core import reference_packs as ref
from trainers.core.results import dataset_short

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
        rows.append(
            {
                "run": series_name(r),
                "test error %": res.get("test_error"),
                "paper %": paper,
                "iterations": iterations_text(r),
                "schedule": r["schedule"],
                "dataset": dataset_short(r["config"]["dataset"])
                + (f" ({r['config']['test_size']:,} test images)" if r["config"].get("test_size") else ""),
                "device": p.get("device_name"),
                "wall time": f"{p['wall_time_s'] / 60:.1f} min",
                "images/s": round(p["images_per_s"]) if p.get("images_per_s") else None,
                "torch": p.get("torch") + (f", CUDA {p['cuda']}" if p.get("cuda") else ""),
                "commit": p.get("code_version"),
                "key": r["key"],
            }
        )
    return pd.DataFrame(rows)


def chart(runs: list[dict[str, Any]], key: str) -> None:
    curves = group_curves(frames(runs))
    refs = {series_name(r): paper_text(r)[1] for r in runs if paper_text(r)[1] is not None}
    drops = {tuple(lr_drops(r["config"])) for r in runs}
    fig = curve_figure(curves, lr_drops=next(iter(drops)) if len(drops) == 1 else (), paper_errors=refs)
    st.plotly_chart(restyle(fig), key=key)


def iterations_text(run: dict[str, Any]) -> str:
    """'2,000 of 64,000' for a partial run, '8,000' for a finished one."""
    trained, total = run["result"].get("iterations"), run["config"].get("iterations")
    if ref.is_partial(run):
        return f"{trained:,} of {total:,}"
    return f"{trained:,}" if isinstance(trained, int) else "-"


def _marker(run: dict[str, Any], x: float) -> tuple[float, float, str] | None:
    row, same_depth = ref.paper_number(run)
    if row is None or not same_depth:
        return None
    total = run["config"]["iterations"]
    if row.fails:
        return (x, 20.0, f"paper at {total // 1000}k: fail (> 20 %)")
    if row.reported is None:
        return None
    return (x, float(row.reported), f"paper at {total // 1000}k: {row.reported:.2f} %")


def _devices(runs: list[dict[str, Any]]) -> str:
    names = sorted({str(r["provenance"].get("device_name")) for r in runs})
    return "; ".join(names)


def campaign(doc: dict[str, Any], only: set[str] | None = None) -> bool:
    """Issue #17's first start: Table 1 on ResNet-110, the paper's own schedule, as far as it has
    been trained (partial runs), the paper's final numbers at the schedule's end, the identity
    shortcut's seeds as a band, and a caption that says which differences exceed that band.
    `only`: run keys (a Learn link's) to show, with the baseline always kept. False if the pack has
    no campaign group (or `only` names runs outside it)."""
    g = ref.campaign_group(doc)
    if g is None:
        return False
    series = g["series"]
    if only:
        keys = {r["key"] for r in g["runs"]}
        if not only <= keys:
            return False
        series = {n: rs for n, rs in series.items() if n == g["baseline"] or any(r["key"] in only for r in rs)}
        g = {**g, "series": series, "runs": [r for rs in series.values() for r in rs]}
        g["trained"] = min(int(r["result"]["iterations"]) for r in g["runs"])
    total, trained = g["total"], g["trained"]
    st.subheader(f"Table 1 on ResNet-{g['depth']}: the first {trained:,} iterations (of the paper's {total:,})")
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    with c1:
        x_name = (
            st.segmented_control(
                "x axis",
                ["iterations", f"fraction of the paper's {total // 1000}k schedule"],
                default="iterations",
                key="ref_x",
            )
            or "iterations"
        )
    with c2:
        log_x = st.toggle("log x: the trained part and the paper's end on one axis", value=True, key="ref_log_x")
    x = "iteration" if x_name == "iterations" else "fraction"
    names = {name: f"{PREFIX}{name}" for name in series}
    curves = group_curves({names[n]: [curve_frame(r["curve"]) for r in runs] for n, runs in series.items()})
    curves["fraction"] = curves["iteration"] / total
    markers = {
        names[n]: m
        for n, runs in series.items()
        if (m := _marker(runs[0], total if x == "iteration" else 1.0)) is not None
    }
    fig = curve_figure(
        curves,
        lr_drops=lr_drops(series[g["baseline"]][0]["config"]) if x == "iteration" else (),
        markers=markers,
        x=x,
        log_x=log_x,
    )
    st.plotly_chart(restyle(fig), key="reference_campaign_chart")
    sep = separation.compare(
        [r["curve"] for r in series[g["baseline"]]],
        {n: [r["curve"] for r in rs] for n, rs in series.items() if n != g["baseline"]},
    )
    n_text = ", ".join(f"{n}: n = {len(rs)}" for n, rs in series.items())
    st.caption(
        md_escape(
            f"Reference runs of this engine, shipped with the explorer (not yours). Each on the paper's schedule "
            f"(64k iterations, lr 0.01 for the first 400, then 0.1, /10 at 32k and 48k), stopped part-way: every run "
            f"has trained at least {trained:,} of its {total:,} iterations (the table says how many each). "
            f"{dataset_short(g['dataset'])}; trained on {_devices(g['runs'])}. {n_text}. "
            f"Markers at {total:,}: the paper's final test error (median of 5, the original CIFAR-10), where these "
            f"runs have not been. Band: the min-max of the {g['baseline']} seeds. "
            + separation.verdict_text(sep, f"{g['baseline']}")
            + " Two seeds give a rough yardstick of the noise, not a significance test."
        )
    )
    frame = table(g["runs"])
    st.dataframe(frame, hide_index=True, width="stretch", key="reference_campaign_table")
    return True


def fallback_notes(runs: list[dict[str, Any]]) -> list[str]:
    """The caption of reference runs outside the campaign view: what they are, n, and no claim of
    a difference the seeds cannot support."""
    notes = ["Dashed: training loss; solid: test error."]
    seeds: dict[str, int] = {}
    for r in runs:
        seeds[r["label"]] = seeds.get(r["label"], 0) + 1
    if all(n == 1 for n in seeds.values()):
        notes.append(
            f"n = 1 per variant (one seed each, {len(runs)} run{'s' if len(runs) != 1 else ''}): with no seed "
            "spread to judge by, a gap between two single runs is not a difference between the variants."
        )
    else:
        notes.append("n per variant: " + ", ".join(f"{k}: {v}" for k, v in seeds.items()) + ".")
    errors = {
        r["config"]["ordering"]: r["result"].get("test_error") for r in runs if r["config"]["shortcut"] == "identity"
    }
    depths = {r["config"]["depth"] for r in runs}
    if {"original", "full_preact"} <= set(errors) and None not in errors.values() and max(depths) < 110:
        gap = abs(errors["original"] - errors["full_preact"])
        t3 = {row.label: row.reported for row in presets.PRESETS["table3"].rows}
        gains = [(d, t3.get(f"ResNet-{d}, original"), t3.get(f"ResNet-{d}, pre-activation")) for d in (110, 1001)]
        gain_text = " and ".join(f"{o - p:.2f} points at ResNet-{d}" for d, o, p in gains if o and p)
        notes.append(
            f"At ResNet-{max(depths)} the two orderings end {gap:.2f} points apart: no difference at this "
            f"depth. The paper finds the same trend: pre-activation gains {gain_text} (Table 3), "
            "less the shallower the net."
        )
    if any(paper_text(r)[0] for r in runs):
        notes.append(
            "paper %: He et al. 2016, median of 5 runs of the full 64k-iteration schedule on the original "
            "CIFAR-10"
            + (
                " (ResNet-110 where a depth is in brackets: another net than these runs)"
                if any(not ref.paper_number(r)[1] for r in runs)
                else ""
            )
            + "; beside runs on the JPEG copy or a shorter schedule it is a landmark, not a target."
        )
    schedules = {r["schedule"] for r in runs}
    notes += [f"{s}: {presets.SCHEDULE_NOTES[s]}." for s in sorted(schedules) if s in presets.SCHEDULE_NOTES]
    return notes


def first_start() -> bool:
    """Compare with no finished run of the user's: the pack's best teaching comparison (or the runs
    a Learn link chose), the paper's numbers beside it, and where every curve came from. False if
    the pack has nothing to show."""
    doc = pack()
    runs = runs_from_url(doc)
    if not runs and not ref.campaign_group(doc) and not ref.teaching_comparison(doc):
        return False
    if not st.toggle("Show the reference runs", value=True, key="ref_show"):
        return True
    st.markdown(
        "**Reference runs**: trained by this engine and shipped with the explorer, so there is "
        "something real to compare before you train. They are not yours and never mix with your "
        "runs; your own run of the same config is listed as yours."
    )
    if campaign(doc, only={r["key"] for r in runs} or None):
        return True
    runs = runs or ref.teaching_comparison(doc)
    chart(runs, key="reference_chart")
    st.dataframe(table(runs), hide_index=True, width="stretch", key="reference_table")
    st.caption(md_escape(" ".join(fallback_notes(runs))))
    return True


def overlay(series: dict[str, list], references: dict[str, float]) -> None:
    """On Compare with the user's runs: reference runs to draw beside them (off unless chosen)."""
    doc = pack()
    by_key = ref.best_runs(doc)
    if not by_key:
        return
    chosen = st.multiselect(
        "Reference runs (shipped with the explorer, not yours)",
        list(by_key),
        default=[k for k in dict.fromkeys(st.query_params.get_all("ref")) if k in by_key],
        format_func=lambda k: series_name(by_key[k]),
        key="ref_overlay",
        placeholder="none",
    )
    for k in chosen:
        r = by_key[k]
        series[series_name(r)] = [curve_frame(r["curve"])]
        number = paper_text(r)[1]
        if number is not None:
            references[series_name(r)] = number


def concept_link(concept: str) -> None:
    """On Learn: a link to the reference curves that show `concept`, only if the pack has runs that
    show it (a difference beyond the baseline's seed spread, trainers.core.reference_packs.concept_runs)."""
    runs = ref.concept_runs(pack(), concept)
    if not runs:
        return
    base = runs[0]
    others = list(dict.fromkeys(r["label"] for r in runs if r["label"] != base["label"]))
    seeds = sum(1 for r in runs if r["label"] == base["label"])
    trained = min(int(r["result"]["iterations"]) for r in runs)
    label = (
        f"See {concept} trained: {', '.join(others)} vs {base['label']} ({seeds} seeds), the first "
        f"{trained:,} iterations of the paper's schedule ({device_short(base)})"
    )
    st.page_link(
        COMPARE_PAGE,
        label=md_escape(label),
        icon=":material/show_chart:",
        query_params={"ref": [r["key"] for r in runs]},
    )
