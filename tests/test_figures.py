"""Figures and tables are pure functions: plain data in, DataFrame / go.Figure out, no browser."""

import math
from types import SimpleNamespace

import pytest

from explorer import figures as fg


def events(loss0=2.3, err0=90.0, n=5, every=10):
    out = []
    for i in range(1, n + 1):
        out.append(
            {
                "type": "metrics",
                "iteration": i * every,
                "epoch": 0.1 * i,
                "train_loss": loss0 / i,
                "train_error": 50.0,
                "lr": 0.1,
                "images_per_s": 100.0,
                "elapsed_s": i,
                "eta_s": 1,
            }
        )
        if i % 2 == 0:
            out.append(
                {"type": "eval", "iteration": i * every, "epoch": 0.1 * i, "test_error": err0 / i, "test_loss": 1.0}
            )
    out.append({"type": "checkpoint", "iteration": n * every, "path": "x"})
    return out


def record(key, seed, err, status="done", **cfg):
    config = {
        "ordering": "full_preact",
        "shortcut": "identity",
        "depth": 110,
        "dataset": "cifar10",
        "iterations": 64000,
        "seed": seed,
        **cfg,
    }
    return {
        "key": key,
        "config": config,
        "label": "ResNet-110 full_preact / identity",
        "status": status,
        "result": {"test_error": err} if err is not None else None,
    }


def test_curve_frame_merges_metrics_and_eval_rows():
    df = fg.curve_frame(events())
    assert list(df.columns) == list(fg.CURVE_COLUMNS)
    assert list(df["iteration"]) == [10, 20, 30, 40, 50]
    assert df["test_error"].notna().sum() == 2 and df["train_loss"].notna().all()
    assert fg.curve_frame([]).empty


def test_ema_debiased_and_nan_safe():
    assert list(fg.ema([1.0, 1.0, 1.0], 0.9)) == pytest.approx([1.0, 1.0, 1.0])
    out = fg.ema([1.0, math.nan, 3.0], 0.5)
    assert math.isnan(out[1]) and out[0] == 1.0 and 1.0 < out[2] < 3.0
    assert list(fg.ema([1.0, 2.0], 0.0)) == [1.0, 2.0]


def test_group_curves_median_and_band_over_seeds():
    frames = [fg.curve_frame(events(loss0=loss)) for loss in (1.0, 2.0, 4.0)]
    df = fg.group_curves({"a": frames, "b": frames[:1]})
    a = df[(df.series == "a") & (df.iteration == 10)].iloc[0]
    assert (a.train_loss, a.train_loss_lo, a.train_loss_hi, a.n) == (2.0, 1.0, 4.0, 3)
    assert set(df.series) == {"a", "b"}
    assert fg.group_curves({}).empty


def test_curve_figure_in_the_papers_style():
    frames = [fg.curve_frame(events(loss0=loss)) for loss in (1.0, 2.0)]
    curves = fg.group_curves({"pre-act": frames, "original": frames[:1]})
    fig = fg.curve_figure(curves, lr_drops=[25, 40], paper_errors={"pre-act": 6.37}, log_loss=True)
    names = [t.name for t in fig.data]
    loss = next(t for t in fig.data if t.name.endswith("train loss") and t.legendgroup == "pre-act")
    err = next(t for t in fig.data if t.name.endswith("test error") and t.legendgroup == "pre-act")
    assert loss.line.dash == "dash" and loss.yaxis == "y"
    assert err.line.dash is None and err.yaxis == "y2"
    assert any(n.startswith("paper: 6.37%") for n in names)
    assert sum(1 for t in fig.data if t.fill == "toself") == 2  # bands only where n > 1
    assert len([s for s in fig.layout.shapes if s.line.dash == "dot"]) == 2
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.side == "right"
    assert fig.layout.xaxis.title.text == "iterations"


def test_a_loss_spike_does_not_squash_the_other_curves():
    """One run's loss reaching 284 for a log interval (exclusive gating, ResNet-110, warm-up) set the
    linear loss axis to 0-284 and flattened every curve: the axis now stops at 1.5x the 95th
    percentile, and the figure says which run goes above it, where, and how far."""
    calm = fg.curve_frame(events(loss0=2.5, n=60))
    spiky_ev = events(loss0=2.5, n=60)
    for e in spiky_ev:
        if e.get("type") == "metrics" and e["iteration"] == 20:
            e["train_loss"] = 284.0
    curves = fg.group_curves({"identity": [calm], "exclusive gate": [fg.curve_frame(spiky_ev)]})
    fig = fg.curve_figure(curves)
    top = fig.layout.yaxis.range[1]
    assert 2.5 <= top < 10
    note = " ".join(a.text for a in fig.layout.annotations)
    assert "exclusive gate: up to 284 at iteration 20" in note and "identity" not in note
    assert fg.curve_figure(curves, log_loss=True).layout.yaxis.range is None  # a log axis shows it all
    assert fg.curve_figure(fg.group_curves({"identity": [calm]})).layout.yaxis.range is None  # no spike


def test_curve_figure_empty_says_so():
    fig = fg.curve_figure(fg.group_curves({}))
    assert len(fig.data) == 0 and "no curve" in fig.layout.annotations[0].text


def test_results_table_median_paper_difference_and_fail():
    ref = SimpleNamespace(reported=6.37, fails=False, label="full pre-act")
    recs = [
        record("k1", 0, 6.0),
        record("k2", 1, 7.0),
        record("k3", 2, 6.5),
        record("k4", 0, None, status="running"),
        record("k5", 0, 35.0, shortcut="constant"),
        record("k6", 1, 50.0, shortcut="constant"),
    ]
    failing = SimpleNamespace(reported=None, fails=True, label="λ=0.5")
    table = fg.results_table(recs, paper_row=lambda c: ref if c["shortcut"] == "identity" else failing)
    assert len(table) == 2
    row = table[table["n"] == 3].iloc[0]
    assert (row["median"], row["min"], row["max"]) == (6.5, 6.0, 7.0)
    assert row["paper"] == "6.37" and row["difference"] == pytest.approx(0.13)
    bad = table[table["n"] == 2].iloc[0]
    assert bad["ours"].startswith("fail") and bad["paper"] == "fail" and math.isnan(bad["difference"])
    assert "paper: fail" in bad["note"]


def test_results_table_notes_quick_runs_and_jpeg_copy():
    ref = SimpleNamespace(reported=6.61, fails=False, label="original")
    r = record("k", 0, 30.0, iterations=500, dataset="folder:../shared/data/cifar10-jpeg.tar.gz")
    row = fg.results_table([r], paper_row=lambda c: ref).iloc[0]
    assert "500 iterations" in row["note"] and "JPEG copy" in row["note"]
    assert row["dataset"] == "CIFAR-10 (JPEG copy)"
    assert fg.results_table([]).empty


def test_signal_and_product_figures():
    res = {"label": "a", "activation_rms": [1.0, 2.0, 3.0], "gradient_ratio": [4.0, 2.0, 1.0]}
    fig = fg.signal_figure([res, {**res, "label": "b"}])
    assert len(fig.data) == 4 and fig.layout.yaxis.type == "log"
    prods = [
        {"label": "λ=0.5", "to_output": [0.125, 0.25, 0.5, 1.0], "product": 0.125},
        {"label": "λ=0", "to_output": [0.0, 0.0, 1.0], "product": 0.0},
        {"label": "1x1", "to_output": None, "product": None, "note": "not a scalar"},
    ]
    fig = fg.product_figure(prods)
    assert fig.data[0].y[0] == 0.125 and fig.data[1].y[0] is None
    assert "Π λ = 0" in fig.data[1].name and "not a scalar" in fig.data[2].name


def test_progress_text_and_durations():
    assert (
        fg.progress_text(
            {
                "iteration": 1234,
                "total": 64000,
                "images_per_s": 812.4,
                "eta_s": 180,
                "status": "running",
                "device": "cpu",
            }
        )
        == "1,234 / 64,000 it · 812 img/s · ETA 3 min · cpu"
    )
    assert fg.format_duration(30) == "30 s" and fg.format_duration(7200) == "2.0 h"
    assert fg.format_duration(None) == "—"


def test_unit_diagrams_are_the_specs_that_build_the_model():
    import re

    from explorer import diagrams
    from trainers.core.layout import unit_specs
    from trainers.core.registry import ORDERINGS, SHORTCUTS

    dots = diagrams.ordering_diagrams("basic")
    assert set(dots) == set(ORDERINGS)
    for name, dot in dots.items():
        spec = diagrams.typical_unit(diagrams.representative_config(ordering=name))
        drawn = re.findall(r'^\s*f\d+ \[label="([^"]+)"', dot, flags=re.M)
        assert drawn == [op.label() for op in spec.residual], name
        after = re.findall(r'^\s*a\d+ \[label="([^"]+)"', dot, flags=re.M)
        assert after == [op.label() for op in spec.after_add], name
    shortcut_dots = diagrams.shortcut_diagrams(shortcut_scale=0.5)
    assert set(shortcut_dots) == set(SHORTCUTS)
    assert "× λ=0.5" in shortcut_dots["constant"] and "sigmoid" in shortcut_dots["exclusive_gate"]
    # the first unit of stage 2 draws its dimension change (zero-padded identity, option A)
    cfg = diagrams.representative_config()
    first = diagrams.typical_unit(cfg, first_of_stage=True)
    assert first.stride == 2 and "zero-pad" in diagrams.unit_dot(cfg, first)
    assert len(unit_specs(cfg)) == 6


def test_a_live_curve_spans_its_whole_schedule():
    curves = fg.group_curves({"run": [fg.curve_frame([{"type": "metrics", "iteration": 10, "train_loss": 2.0}])]})
    fig = fg.curve_figure(curves, x_total=300)
    assert fig.layout.xaxis.range[1] >= 300
    assert fg.curve_figure(curves).layout.xaxis.range is None  # finished curves: the data decides


def test_diagrams_show_the_shortcut_bn_choice():
    from explorer import diagrams

    dots = diagrams.shortcut_diagrams()
    assert "1x1 conv, 16 → BN" in dots["conv1x1"] and "BN(1x1 conv(x))" in dots["exclusive_gate"]
    assert "BN(1x1 conv(x))" not in diagrams.shortcut_diagrams(ordering="full_preact")["exclusive_gate"]
    for ordering, bn in (("original", True), ("full_preact", False)):
        cfg = diagrams.representative_config(ordering=ordering, block="bottleneck")
        dot = diagrams.unit_dot(cfg, diagrams.typical_unit(cfg, first_of_stage=True))
        assert ("/2 → BN" in dot) is bn


def test_run_colours_are_stable_and_distinct_within_a_chart():
    keys = [f"{i:016x}" for i in range(10)]
    colours = fg.assign_colors(keys)
    assert len(set(colours.values())) == 10 and set(colours.values()) == set(fg.PALETTE[:10])
    assert fg.assign_colors(keys) == colours  # the same runs, the same colours
    alone = fg.assign_colors([keys[3]])
    assert alone[keys[3]] == fg.color_for(keys[3])  # a run alone wears its own colour
    assert len(set(fg.assign_colors([f"k{i}" for i in range(20)]).values())) == 20
