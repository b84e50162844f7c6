"""Figures and tables as pure functions: plain data (events, records, dicts) -> DataFrame / go.Figure.

Nothing here touches Streamlit, the store or tensors, so every figure is tested without a browser.
Training curves follow the paper's figures (Fig. 1, 3, 6): iterations on x, dashed training loss
on the left axis, solid test error (%) on the right axis; here lr drops are dotted vertical lines.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from trainers.core.results import FINISHED, number_text, result_rows

# Ten hue families, then a darker shade of each in the same order (PALETTE[i] and PALETTE[i + 10]
# are one family): a chart uses a family twice only when it shows more than ten runs.
PALETTE = (
    "#1F77B4",
    "#D62728",
    "#2CA02C",
    "#FF7F0E",
    "#9467BD",
    "#8C564B",
    "#E377C2",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
    "#393B79",
    "#8B1A1A",
    "#1E5E1E",
    "#B35806",
    "#54278F",
    "#5A3A2E",
    "#A6427F",
    "#404040",
    "#7A7A10",
    "#0F6E7A",
)
FAMILIES = 10
CURVE_COLUMNS = ("iteration", "train_loss", "train_error", "lr", "test_error", "test_loss", "epoch", "elapsed_s")
X_AXES = {
    "iteration": "iterations",
    "epoch": "epochs",
    "elapsed_s": "wall time",  # x column -> name
    "fraction": "fraction of the paper's schedule",
}


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def color_for(key: str) -> str:
    """A run's own colour (one of the ten main hues), from its key: the same run has the same
    colour on Live and Compare."""
    return PALETTE[int(hashlib.sha256(str(key).encode()).hexdigest()[:8], 16) % FAMILIES]


def assign_colors(keys: Sequence[str]) -> dict[str, str]:
    """Key -> colour for one chart: each key's own colour, except that a key whose hue is already
    taken in this chart takes the next free hue (the same set of runs, the same colours)."""
    out: dict[str, str] = {}
    for k in keys:
        i = PALETTE.index(color_for(k))
        probe = [PALETTE[(i + j) % len(PALETTE)] for j in range(len(PALETTE))]
        families = {PALETTE.index(c) % FAMILIES for c in out.values()}
        free = [c for c in probe if c not in out.values()]
        # its own colour, else the next colour of a hue not yet in the chart, else any free one
        out[k] = next((c for c in free if PALETTE.index(c) % FAMILIES not in families), free[0] if free else probe[0])
    return out


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# --- curves --------------------------------------------------------------------------------------


def curve_frame(events: Iterable[Mapping]) -> pd.DataFrame:
    """One run's metrics and eval events -> one row per logged iteration (NaN where not measured)."""
    rows: dict[int, dict] = {}
    for ev in events:
        kind = ev.get("type")
        if kind not in ("metrics", "eval") or ev.get("iteration") is None:
            continue
        row = rows.setdefault(int(ev["iteration"]), {"iteration": int(ev["iteration"])})
        keys = (
            ("train_loss", "train_error", "lr", "epoch", "elapsed_s")
            if kind == "metrics"
            else ("test_error", "test_loss", "epoch")
        )
        for k in keys:
            v = ev.get(k)
            row[k] = float(v) if isinstance(v, (int, float)) and v is not None else math.nan
    df = pd.DataFrame(sorted(rows.values(), key=lambda r: r["iteration"]), columns=list(CURVE_COLUMNS))
    df = df.astype({c: float for c in CURVE_COLUMNS[1:]})
    if len(df) and df["elapsed_s"].notna().any():  # eval rows: the wall time of the nearest metrics row
        df["elapsed_s"] = df["elapsed_s"].interpolate(limit_direction="both")
    return df


def run_rate(events: Iterable[Mapping], batch_size: int, total: int | None = None) -> dict | None:
    """A live run's speed averaged over its run so far (since the first logged point of its current
    attempt), and the ETA from it: the per-window images/s of the events swings with evaluations
    and other jobs (22-198 img/s within one run was seen), this average does not."""
    pts = [
        (int(e["iteration"]), float(e["elapsed_s"]))
        for e in events
        if e.get("type") == "metrics" and isinstance(e.get("elapsed_s"), (int, float))
    ]
    # a resumed attempt restarts its clock: keep the points after the last time the clock went back
    for i in range(len(pts) - 1, 0, -1):
        if pts[i][1] < pts[i - 1][1] or pts[i][0] <= pts[i - 1][0]:
            pts = pts[i:]
            break
    if len(pts) < 2 or pts[-1][1] <= pts[0][1]:
        return None
    rate = (pts[-1][0] - pts[0][0]) * batch_size / (pts[-1][1] - pts[0][1])
    eta = (total - pts[-1][0]) * batch_size / rate if total else None
    return {"images_per_s": rate, "eta_s": eta}


def ema(values: Sequence[float] | pd.Series, weight: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing); NaNs are skipped, kept NaN.

    weight 0 = no smoothing, 0.99 = very smooth."""
    v = np.asarray(values, dtype=float)
    if not 0 < weight < 1:
        return v.copy()
    out = np.full_like(v, np.nan)
    acc, norm = 0.0, 0.0
    for i, x in enumerate(v):
        if not math.isfinite(x):
            continue
        acc = weight * acc + (1 - weight) * x
        norm = weight * norm + (1 - weight)
        out[i] = acc / norm
    return out


def seed_band(frames: Sequence[pd.DataFrame], column: str) -> pd.DataFrame:
    """Median and min-max over runs (seeds) of one column, aligned on iteration.

    Returns columns iteration, median, lo, hi, n (how many runs had a value there)."""
    parts = [f[["iteration", column]].dropna().assign(run=i) for i, f in enumerate(frames) if column in f]
    if not parts:
        return pd.DataFrame(columns=["iteration", "median", "lo", "hi", "n"])
    g = pd.concat(parts).groupby("iteration")[column]
    out = pd.DataFrame({"median": g.median(), "lo": g.min(), "hi": g.max(), "n": g.count()})
    return out.reset_index()


def group_curves(groups: Mapping[str, Sequence[pd.DataFrame]], smoothing: float = 0.0) -> pd.DataFrame:
    """Series name -> its runs' curve frames  ->  one long frame for `curve_figure`.

    The training loss of each run is smoothed first (EMA, `smoothing` in [0, 1)); its unsmoothed
    median stays in `train_loss_raw` (drawn faintly behind). The test error is never smoothed: it
    is measured at a few points only, and an average would end away from the last measured value.
    The seeds of a series are reduced to their median with a min-max band. Columns: series,
    iteration, epoch, elapsed_s (medians), and for train_loss and test_error: the median,
    `<col>_lo`, `<col>_hi`, plus train_loss_raw and `n` (runs in the series).
    """
    out = []
    for name, frames in groups.items():
        frames = [f for f in frames if len(f)]
        if not frames:
            continue
        smoothed = []
        for f in frames:
            f = f.copy()
            f["train_loss_raw"] = f["train_loss"]
            mask = f["train_loss"].notna()
            f.loc[mask, "train_loss"] = ema(f.loc[mask, "train_loss"], smoothing)
            smoothed.append(f)
        merged = None
        for col in ("train_loss", "test_error", "train_loss_raw", "epoch", "elapsed_s"):
            b = seed_band([f for f in smoothed if col in f], col).rename(
                columns={"median": col, "lo": f"{col}_lo", "hi": f"{col}_hi", "n": f"{col}_n"}
            )
            if col not in ("train_loss", "test_error"):
                b = b[["iteration", col]]
            merged = b if merged is None else merged.merge(b, on="iteration", how="outer")
        assert merged is not None  # the loop above ran
        merged = merged.sort_values("iteration").assign(series=name, n=len(frames))
        out.append(merged.drop(columns=["train_loss_n", "test_error_n"]))
    cols = [
        "series",
        "iteration",
        "train_loss",
        "train_loss_lo",
        "train_loss_hi",
        "test_error",
        "test_error_lo",
        "test_error_hi",
        "train_loss_raw",
        "epoch",
        "elapsed_s",
        "n",
    ]
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


def loss_axis_cap(curves: pd.DataFrame) -> float | None:
    """The top of a linear training-loss axis when a few points would squash every curve (a loss
    spike, e.g. ResNet-110 with exclusive gating at 284 for one log interval early in the warm-up).
    The axis keeps every series' start (its first logged loss, about ln(classes) for a run that
    starts normally) and most of the points: max(1.2x the highest start, 1.5x the 95th percentile).
    None, the data decides, when no point lies above that."""
    d = curves.dropna(subset=["train_loss"])
    d = d[np.isfinite(d["train_loss"].astype(float))]
    if len(d) < 20:
        return None
    starts = d.sort_values("iteration").groupby("series", sort=False)["train_loss"].first()
    cap = max(1.5 * float(np.percentile(d["train_loss"], 95)), 1.2 * float(starts.max()))
    return cap if cap > 0 and float(d["train_loss"].max()) > cap else None


def _band(fig: go.Figure, d: pd.DataFrame, col: str, c: str, yaxis: str, name: str, x: str) -> None:
    d = d.dropna(subset=[f"{col}_lo", f"{col}_hi", x])
    if d.empty:
        return
    xs = list(d[x]) + list(d[x][::-1])
    y = list(d[f"{col}_hi"]) + list(d[f"{col}_lo"][::-1])
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=y,
            fill="toself",
            fillcolor=_rgba(c, 0.15),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            yaxis=yaxis,
            legendgroup=name,
            name=f"{name} {col} min-max",
        )
    )


def curve_figure(
    curves: pd.DataFrame,
    *,
    lr_drops: Sequence[int] = (),
    paper_errors: Mapping[str, float | None] | None = None,
    log_loss: bool = False,
    log_error: bool = False,
    title: str = "",
    height: int = 440,
    x_total: int | None = None,
    colors: Mapping[str, str] | None = None,
    x: str = "iteration",
    log_x: bool = False,
    markers: Mapping[str, tuple[float, float, str]] | None = None,
) -> go.Figure:
    """Training curves in the paper's style (Fig. 1, 3, 6).

    `curves` comes from `group_curves` (or has at least series, iteration, train_loss,
    test_error). Dashed: training loss, left axis (where it was smoothed, the raw loss is drawn
    faintly behind). Solid: test error %, right axis. A min-max band is drawn where a series has
    more than one run. `lr_drops`: iterations of the lr /10 steps (dotted vertical lines, on the
    iteration axis only). `paper_errors`: series name -> the paper's error %, drawn as a dash-dot
    horizontal line in the series' colour on the error axis. `x_total`: the run's length in
    iterations, so a live curve grows across a fixed axis instead of the axis stretching with it.
    `colors`: series name -> colour (see `assign_colors`), else the palette in order. `x`:
    "iteration", "epoch", "elapsed_s" (wall time, drawn in minutes) or "fraction" (of the run's
    schedule: the caller adds that column). `log_x`: a log iteration/fraction axis (the first
    iterations and the end of a long schedule on one axis). `markers`: series name -> (x, test
    error %, text): one point on the error axis in the series' colour, e.g. the paper's final number
    at the end of its schedule (an upward triangle where the text says "fail").
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    fig = go.Figure()
    paper_errors = dict(paper_errors or {})
    colors = dict(colors or {})
    curves = curves.copy()
    if x == "elapsed_s" and len(curves):
        curves["elapsed_s"] = curves["elapsed_s"] / 60.0
    if x not in curves:
        curves[x] = math.nan
    names = list(dict.fromkeys(curves["series"])) if len(curves) else []
    shown = curves.dropna(subset=[x])
    x_max = float(shown[x].max()) if len(shown) else 1.0
    if x == "iteration":
        x_max = max(x_max, float(x_total or 0))
    unit = {
        "iteration": "it %{x}",
        "epoch": "epoch %{x:.2f}",
        "elapsed_s": "%{x:.1f} min",
        "fraction": "%{x:.4f} of the schedule",
    }[x]
    markers = dict(markers or {})
    for i, name in enumerate(names):
        c = colors.get(name) or color(i)
        d = curves[curves["series"] == name].sort_values("iteration")
        many = "n" in d and int(d["n"].max()) > 1
        label = f"{name} (median of {int(d['n'].max())})" if many else name
        loss = d.dropna(subset=["train_loss", x])
        err = d.dropna(subset=["test_error", x])
        if many:
            _band(fig, d, "train_loss", c, "y", name, x)
            _band(fig, d, "test_error", c, "y2", name, x)
        if "train_loss_raw" in d:
            raw = d.dropna(subset=["train_loss_raw", x])
            if len(raw) and not np.allclose(raw["train_loss_raw"], raw["train_loss"], equal_nan=True):
                fig.add_trace(
                    go.Scatter(
                        x=raw[x],
                        y=raw["train_loss_raw"],
                        yaxis="y",
                        mode="lines",
                        line={"color": _rgba(c, 0.25), "width": 1},
                        legendgroup=name,
                        showlegend=False,
                        hoverinfo="skip",
                        name=f"{label}: train loss (raw)",
                    )
                )
        fig.add_trace(
            go.Scatter(
                x=loss[x],
                y=loss["train_loss"],
                yaxis="y",
                mode="lines" if len(loss) > 2 else "lines+markers",  # a first point shows
                line={"color": c, "dash": "dash", "width": 1.5},
                legendgroup=name,
                name=f"{label}: train loss",
                hovertemplate=unit + "<br>train loss %{y:.3f}<extra>" + name + "</extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=err[x],
                y=err["test_error"],
                mode="lines+markers",
                yaxis="y2",
                marker={"size": 4},
                line={"color": c, "width": 2},
                legendgroup=name,
                name=f"{label}: test error",
                hovertemplate=unit + "<br>test error %{y:.2f}%<extra>" + name + "</extra>",
            )
        )
        paper_error = paper_errors.get(name)
        if paper_error is not None:
            ref = float(paper_error)
            fig.add_trace(
                go.Scatter(
                    x=[0, x_max],
                    y=[ref, ref],
                    mode="lines",
                    yaxis="y2",
                    line={"color": c, "dash": "dashdot", "width": 1},
                    legendgroup=name,
                    name=f"paper: {ref:.2f}% ({name})",
                    hovertemplate=f"paper: {ref:.2f}%<extra>{name}</extra>",
                )
            )
        if name in markers:
            mx, my, text = markers[name]
            fail = "fail" in text
            fig.add_trace(
                go.Scatter(
                    x=[mx],
                    y=[my],
                    mode="markers",
                    yaxis="y2",
                    legendgroup=name,
                    marker={
                        "color": c,
                        "size": 11,
                        "symbol": "triangle-up" if fail else "diamond",
                        "line": {"color": "#333", "width": 1},
                    },
                    name=f"{text} ({name})",
                    hovertemplate=f"{text}<extra>{name}</extra>",
                )
            )
            x_max = max(x_max, float(mx))
    for it in lr_drops if x == "iteration" else ():
        fig.add_vline(
            x=it,
            line={"dash": "dot", "color": "#888", "width": 1},
            annotation_text="lr ÷10",
            annotation_position="top",
            annotation_font={"size": 10, "color": "#666"},
        )
    cap = None if log_loss or not names else loss_axis_cap(curves)
    if cap is not None:  # say what is off the axis, never drop it silently
        over = curves[curves["train_loss"] > cap].dropna(subset=[x])
        notes = []
        for name, d in over.groupby("series", sort=False):
            top = d.loc[d["train_loss"].idxmax()]
            notes.append(f"{name}: up to {top['train_loss']:.3g} at iteration {int(top['iteration']):,}")
        fig.add_annotation(
            text="training loss above "
            + f"{cap:.2g} is off the axis (switch to a log loss axis to see it): "
            + "; ".join(notes),
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0,
            y=1.0,
            xanchor="left",
            yanchor="bottom",
            align="left",
            font={"size": 10, "color": "#a33"},
        )
    # the legend sits below the plot, inside the figure's height: grow the figure with it, so
    # that many runs do not squeeze the curves themselves
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    fig.update_layout(
        title={"text": title} if title else None,
        height=max(height, 300 + 21 * entries + (30 if title else 0)),
        margin={"l": 60, "r": 60, "t": 50 if title else 30, "b": 40},
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0},
        xaxis={
            "title": {
                "text": X_AXES[x] + (" (minutes)" if x == "elapsed_s" else "") + (", log scale" if log_x else "")
            },
            **({"type": "log"} if log_x else {"rangemode": "tozero"}),
            **({"range": [0, x_max * 1.02]} if x_total and x == "iteration" and not log_x else {}),
        },
        yaxis={
            "title": {"text": "training loss (dashed)"},
            "type": "log" if log_loss else "linear",
            "rangemode": "tozero" if not log_loss else "normal",
            **({"range": [0, cap]} if cap is not None else {}),
        },
        yaxis2={
            "title": {"text": "test error % (solid)"},
            "overlaying": "y",
            "side": "right",
            "type": "log" if log_error else "linear",
            "showgrid": False,
            "tickmode": "auto",
            "rangemode": "tozero" if not log_error else "normal",
        },
    )
    if not names:
        fig.add_annotation(
            text="no curve points yet",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            font={"size": 14, "color": "#888"},
        )
    return fig


# --- results table: the rows come from trainers.core.results (the CLI shows the same) ------------

TABLE_COLUMNS = [
    "group",
    "run",
    "dataset",
    "iterations",
    "n",
    "median",
    "min",
    "max",
    "ours",
    "paper",
    "paper_error",
    "difference",
    "note",
]


def results_table(records: Iterable[Mapping], paper_row: Callable[[Mapping], object] | None = None) -> pd.DataFrame:
    """Finished runs grouped by config-without-seed, beside the paper's number for the same row.

    `paper_row(config_dict)` returns an object with `.reported` (float | None), `.fails` (bool) and
    `.label`, or None (`pages_common.paper_row_for`). Errors are percentages; inf = diverged, NaN = none.
    Columns: group, run, dataset, iterations, n, median, min, max, ours, paper, paper_error,
    difference, note. The rows are `result_rows`' (the CLI's `results` and CSV show the same)."""
    rows = result_rows(
        [r for r in records if r.get("status") in FINISHED], paper_row=paper_row or (lambda config: None)
    )
    out = []
    for r in rows:
        paper = "fail" if r["paper"] == "fail" else ("—" if r["paper"] is None else f"{r['paper']:.2f}")
        out.append(
            {
                **{k: r[k] for k in TABLE_COLUMNS},
                "paper": paper,
                **{
                    k: math.nan if r[k] is None else float(r[k])
                    for k in ("median", "min", "max", "paper_error", "difference")
                },
            }
        )
    return pd.DataFrame(out, columns=TABLE_COLUMNS)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as the paper prints them (2 decimals), "diverged" for inf, blanks where there is
    nothing to say."""
    out = table.copy()
    for col in ("min", "max"):
        out[col] = ["" if pd.isna(v) else number_text(float(v)) for v in table[col]]
    out["difference"] = ["" if pd.isna(v) else f"{v:+.2f}" for v in table["difference"]]
    return out


# --- signal propagation (Learn page) -------------------------------------------------------------


def signal_figure(results: Sequence[Mapping], *, height: int = 420) -> go.Figure:
    """Forward activation RMS and backward gradient (relative to the top) through depth, per variant.

    `results` are `trainers.engine.signal.signal_propagation` dicts."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("forward: activation RMS at each unit's input", "backward: gradient RMS ÷ gradient at the top"),
    )
    for i, r in enumerate(results):
        c = color(i)
        x = list(range(len(r["activation_rms"])))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=r["activation_rms"],
                mode="lines",
                line={"color": c, "width": 2},
                name=r["label"],
                legendgroup=r["label"],
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=r["gradient_ratio"],
                mode="lines",
                line={"color": c, "width": 2},
                name=r["label"],
                legendgroup=r["label"],
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    fig.add_hline(y=1.0, line={"dash": "dot", "color": "#888", "width": 1}, row=1, col=2)
    fig.update_xaxes(title_text="unit (input side → output)")
    fig.update_yaxes(type="log", row=1, col=1, title_text="RMS")
    fig.update_yaxes(type="log", row=1, col=2, title_text="ratio (log)")
    fig.update_layout(
        height=height,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
    )
    return fig


def product_figure(products: Sequence[Mapping], *, height: int = 360) -> go.Figure:
    """Π λ of the pure shortcut path from unit l to the output (`trainers.engine.signal.shortcut_product`).

    A zero product (λ = 0, a plain network) cannot sit on a log axis: it is left out and named in
    the legend."""
    fig = go.Figure()
    for i, p in enumerate(products):
        if p.get("to_output") is None:
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="lines",
                    line={"color": color(i)},
                    name=f"{p['label']}: {p.get('note') or 'no scalar λ'}",
                )
            )
            continue
        y = [v if v > 0 else None for v in p["to_output"]]
        name = f"{p['label']}: Π λ = {p['product']:.3g}"
        if p["product"] == 0:
            name = f"{p['label']}: Π λ = 0 (no shortcut signal at all)"
        fig.add_trace(
            go.Scatter(x=list(range(len(y))), y=y, mode="lines", name=name, line={"color": color(i), "width": 2})
        )
    fig.update_layout(
        height=height,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        xaxis={"title": {"text": "unit l"}},
        yaxis={"title": {"text": "Π λ from unit l to the output"}, "type": "log", "exponentformat": "power"},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
    )
    return fig


def progress_text(record: Mapping, rate: Mapping | None = None) -> str:
    """'1,234 / 64,000 it · 812 img/s · ETA 3 min · cpu' for a run record; `rate` (from
    `run_rate`: the average over the run) replaces the record's last-window speed and ETA."""
    it, total = record.get("iteration") or 0, record.get("total") or 0
    parts = [f"{int(it):,} / {int(total):,} it" if total else f"{int(it):,} it"]
    ips = (rate or {}).get("images_per_s") or record.get("images_per_s")
    if ips:
        parts.append(f"{float(ips):,.0f} img/s" + (" (run average)" if rate else ""))
    eta = (rate or {}).get("eta_s", record.get("eta_s"))
    if eta is not None and record.get("status") == "running":
        parts.append(f"ETA {format_duration(eta)}")
    if record.get("device"):
        parts.append(str(record["device"]))
    return " · ".join(parts)


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(float(seconds)):
        return "—"
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def format_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
