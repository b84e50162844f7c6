"""Every page of the explorer under streamlit's AppTest (no browser): first start with an empty
cache, a store with runs in it, bad input, and a runs layer that fails. Plus the Design page's
pure planning functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import figures, plan
from trainers.core.config import ConfigError, RunConfig
from trainers.core.results import group_key

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = {
    "design": "explorer/pages/design.py",
    "live": "explorer/pages/live.py",
    "compare": "explorer/pages/compare.py",
    "learn": "explorer/pages/learn.py",
    "system": "explorer/pages/system.py",
}
TITLES = {
    "design": "Design & launch",
    "live": "Live",
    "compare": "Compare",
    "learn": "Learn: why identity mappings",
    "system": "Data & system",
}
SMOKE = dict(
    depth=8,
    dataset="synthetic",
    iterations=20,
    train_size=256,
    test_size=128,
    warmup_iterations=0,
    log_every=2,
    eval_every=10,
)


@pytest.fixture
def app_cache(cache_dir: Path, monkeypatch) -> Path:
    monkeypatch.setenv("RESNET_EXPLORER_CACHE", str(cache_dir))
    monkeypatch.setenv("TRAINERS_IDLE_EXIT_S", "3")
    # the Design page's speed benchmark: a fixed, instant answer (the real one is tested by use)
    monkeypatch.setattr(
        "explorer.estimate.benchmark",
        lambda cfg, batch=16, steps=2, device="auto": {
            "images_per_s": 100.0,
            "device": "cpu",
            "batch": batch,
            "steps": steps,
            "basis": "test stub",
        },
    )
    return cache_dir


def open_page(name: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if name != "design":
        at.switch_page(PAGES[name]).run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def add_run(cache: Path, cfg: RunConfig, status: str = "done", test_error: float = 6.5, points: int = 4):
    """A run record with a curve, written through the store as a worker would."""
    from trainers.runs import Store

    with Store(cache) as s:
        s.create(cfg.to_dict(), cfg.label(), cfg.key)
        if status == "queued":
            return
        att = s.claim(cfg.key, "local", "cpu")
        s.apply_event(
            cfg.key,
            att,
            {
                "type": "start",
                "iteration": 0,
                "total": cfg.iterations,
                "device": "cpu",
                "device_name": "CPU",
                "precision": "fp32",
                "parameters": 1,
                "dataset": "x",
                "resumed": False,
            },
        )
        step = max(1, cfg.iterations // points)
        for i in range(1, points + 1):
            s.apply_event(
                cfg.key,
                att,
                {
                    "type": "metrics",
                    "iteration": i * step,
                    "epoch": 0.1 * i,
                    "train_loss": 2.0 / i,
                    "train_error": 50.0,
                    "lr": 0.1,
                    "images_per_s": 123.0,
                    "elapsed_s": i,
                    "eta_s": 10.0,
                },
            )
            s.apply_event(
                cfg.key,
                att,
                {
                    "type": "eval",
                    "iteration": i * step,
                    "epoch": 0.1 * i,
                    "test_error": test_error + 20.0 / i,
                    "test_loss": 1.0,
                },
            )
        if status != "running":
            s.finish(
                cfg.key,
                att,
                {
                    "key": cfg.key,
                    "status": status,
                    "test_error": test_error,
                    "iterations": cfg.iterations,
                    "train_loss": 0.5,
                },
            )


# --- every page, first start ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_renders_on_an_empty_cache(app_cache, name):
    at = open_page(name)
    assert_clean(at)
    assert at.title[0].value == TITLES[name]
    assert len(at.sidebar.caption) >= 1  # the jobs badge


# --- Design & launch ------------------------------------------------------------------------------


def test_design_plans_a_grid_with_a_time_estimate(app_cache):
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("synthetic")
    at.radio(key="design_schedule").set_value("smoke")
    at.selectbox(key="design_depth_basic").set_value(8)
    at.run()
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["new"] == "2" and metrics["cached"] == "0"
    assert "estimated time, one after another" in metrics
    assert any("test stub" in m.value for m in at.markdown)
    plan_df = at.dataframe[0].value
    assert list(plan_df["run"]) == ["ResNet-8 original / identity", "ResNet-8 full_preact / identity"]
    assert list(plan_df["state"]) == ["new", "new"]


def test_design_marks_a_finished_run_as_cached(app_cache):
    from trainers.core.presets import SCHEDULES

    cfg = RunConfig(depth=8, dataset="synthetic", **SCHEDULES["smoke"])  # what the page will plan
    add_run(app_cache, cfg)
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("synthetic")
    at.radio(key="design_schedule").set_value("smoke")
    at.selectbox(key="design_depth_basic").set_value(8)
    at.run()
    df = at.dataframe[0].value
    assert dict(zip(df["key"], df["state"]))[cfg.key] == "cached"
    assert {m.label: m.value for m in at.metric}["cached"] == "1"
    assert at.button(key="design_launch").label == "Launch 1 new run(s)"


def test_design_loads_a_paper_preset_in_one_click(app_cache):
    at = open_page("design")
    at.segmented_control(key="design_source").set_value("table2").run()
    assert_clean(at)
    rows = at.multiselect(key="design_rows_table2").value
    assert len(rows) == 10 and any("full pre-activation" in r for r in rows)
    assert {m.label: m.value for m in at.metric}["new"] == "10"
    paper = at.dataframe[0].value
    assert "6.37" in set(paper["paper"])


def test_design_bad_parameter_gets_a_message_not_a_traceback(app_cache):
    at = open_page("design")
    at.multiselect(key="design_shortcuts").set_value(["constant"]).run()
    at.text_input(key="design_constant_shortcut_scale").input("half").run()
    assert not at.exception
    assert any("not a number" in e.value for e in at.error)


def smoke_design(app_cache, monkeypatch) -> AppTest:
    """Design with a ResNet-8 smoke plan on synthetic data; Launch submits without a supervisor."""
    from trainers.runs import submit

    monkeypatch.setattr(
        "explorer.runs_api.submit_all",
        lambda cfgs, backend="local": [
            submit(c, cache_dir=app_cache, backend=backend, start_supervisor=False) for c in cfgs
        ],
    )
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("synthetic")
    at.radio(key="design_schedule").set_value("smoke")
    at.selectbox(key="design_depth_basic").set_value(8)
    at.run()
    return at


def test_design_launch_queues_runs_and_opens_live(app_cache, monkeypatch):
    at = smoke_design(app_cache, monkeypatch)
    at.button(key="design_launch").click().run()
    assert_clean(at)
    assert at.title[0].value == "Live"
    assert len(at.get("progress")) >= 2
    assert any("queued" in m.value for m in at.markdown)


# --- Live ----------------------------------------------------------------------------------------


def test_live_shows_progress_curve_and_cancels(app_cache):
    cfg = RunConfig(**SMOKE)
    add_run(app_cache, cfg, status="running")
    at = open_page("live")
    assert_clean(at)
    bars = at.get("progress")
    assert bars and "img/s" in bars[0].proto.text and "ETA" in bars[0].proto.text
    assert len(at.get("plotly_chart")) == 1
    at.button(key=f"cancel_{cfg.key}").click().run()
    from trainers.runs import Store

    with Store(app_cache) as s:
        assert s.get(cfg.key)["cancel_requested"] is True


def test_live_shows_the_status_as_results_do(app_cache):
    """Issue #18, item 6: a run of today's engine stored "done" on the paper's schedule at 35 % is
    the paper's "fail" on Live's card, curve picker and chart title alike (they showed "done")."""
    cfg = RunConfig(depth=8, dataset="synthetic")  # 64k iterations: the paper's schedule
    add_run(app_cache, cfg, status="done", test_error=35.0)
    at = open_page("live")
    assert_clean(at)
    assert any(f"`fail` · seed 0 · key `{cfg.key}`" in m.value for m in at.markdown)
    assert [o.endswith("· fail") for o in at.multiselect(key="live_curves").options] == [True]
    title = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert title.endswith("— fail"), title


# --- Compare -------------------------------------------------------------------------------------


def test_compare_groups_seeds_beside_the_paper_and_lives_in_the_url(app_cache):
    from trainers.core.presets import PRESETS

    row = next(r for r in PRESETS["table2"].rows if r.label.startswith("full pre-activation, ResNet-110"))
    for seed, err in enumerate((6.0, 7.0, 6.5)):
        add_run(app_cache, row.config(iterations=40, seed=seed), test_error=err)
    add_run(app_cache, RunConfig(**SMOKE), test_error=55.0)
    group = group_key(row.config(iterations=40).to_dict())
    at = open_page("compare", {"g": group, "smooth": "0.5"})
    assert_clean(at)
    assert at.multiselect(key="compare_groups").value == [group]
    assert at.slider(key="smooth").value == 0.5
    table = at.dataframe[0].value
    assert len(table) == 1
    r = table.iloc[0]
    assert (r["n"], r["ours"], r["min"], r["max"], r["paper"], r["difference"]) == (
        3,
        "6.50",
        "6.00",
        "7.00",
        "6.37",
        "+0.13",
    )
    names = [t.get("name", "") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert any(n.startswith("paper: 6.37%") for n in names) and any("median of 3" in n for n in names)
    assert [d.label for d in at.get("download_button")][:2] == ["Table (CSV)", "Curves (CSV)"]
    # nothing chosen: every finished group is in the table, the smoke run as "fail"
    at.multiselect(key="compare_groups").set_value([]).run()
    assert len(at.dataframe[0].value) == 2
    assert "g" not in at.query_params


def test_compare_when_the_runs_layer_fails_says_what_to_do(app_cache, monkeypatch):
    def broken():
        raise OSError("database is locked")

    monkeypatch.setattr("explorer.runs_api.list_runs", broken)
    at = open_page("compare")
    assert not at.exception
    assert any("cache folder" in e.value for e in at.error)


# --- Learn ---------------------------------------------------------------------------------------


def test_learn_draws_every_ordering_from_the_registry(app_cache):
    from trainers.core.registry import ORDERINGS

    at = open_page("learn")
    assert_clean(at)
    assert len(at.get("graphviz_chart")) >= len(ORDERINGS)


def test_learn_measures_signal_through_depth(app_cache):
    at = open_page("learn", {"learn_tab": "Signal through depth", "depth": "20", "batch": "4"})
    assert_clean(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    names = [t["name"] for t in json.loads(charts[1].proto.spec)["data"]]
    assert any("Π λ = 0.00195" in n for n in names)  # λ = 0.5 over ResNet-20's 9 units


# --- Data & system -------------------------------------------------------------------------------


def test_system_lists_datasets_and_prepares_one_with_progress(app_cache):
    at = open_page("system")
    assert_clean(at)
    states = dict(zip(at.dataframe[0].value["spec"], at.dataframe[0].value["state"]))
    assert states["synthetic"] == "decoded, ready"
    assert states["cifar10"] in ("downloadable (needs internet)", "present", "decoded, ready")
    at.selectbox(key="system_prepare_spec").set_value("synthetic")
    at.button(key="system_prepare").click().run()
    assert_clean(at)
    assert any("ready" in (p.proto.text or "") for p in at.get("progress"))


def test_system_missing_folder_says_what_to_do(app_cache, tmp_path):
    at = open_page("system")
    at.text_input(key="system_folder").input(str(tmp_path / "nowhere")).run()
    at.button(key="system_folder_go").click().run()
    assert not at.exception
    assert at.error and "nowhere" in at.error[0].value


# --- planning, pure ------------------------------------------------------------------------------


def test_grid_templates_and_configs():
    t = plan.grid_templates(
        ["original", "full_preact"],
        ["identity", "constant"],
        {"constant": {"shortcut_scale": [0.0, 0.5], "residual_scale": [1.0]}},
        "basic",
        20,
    )
    assert len(t) == 2 * (1 + 2)
    cfgs = plan.make_configs(t + t[:1], seeds=2, schedule={"iterations": 30}, overrides={"dataset": "synthetic"})
    assert len(cfgs) == 12 and all(c.iterations == 30 and c.dataset == "synthetic" for c in cfgs)
    assert [c.seed for c in cfgs[:6]] == [0] * 6  # seed-major, like preset_configs
    assert plan.parse_values("0, 0.5,0.5", "λ") == [0.0, 0.5]
    with pytest.raises(ConfigError, match="not a number"):
        plan.parse_values("a", "λ")
    assert plan.depth_choices("bottleneck")[:2] == [11, 20] and 164 in plan.depth_choices("bottleneck")
    assert plan.plan_state(None) == "new" and plan.plan_state({"status": "cancelled"}) == "resume"


def test_design_offers_the_shortcut_bn_choice_for_gates_too():
    """Issue #18, item 1: Fig. 2's caption puts BN after the gate convs as after the 1x1 shortcut
    conv, so Design asks for both (it offered the choice for the 1x1 conv only)."""
    for s in ("exclusive_gate", "shortcut_gate", "conv1x1"):
        (t,) = plan.grid_templates(["original"], [s], {s: {"shortcut_bn": [False]}}, "basic", 20)
        assert plan.make_configs([t], seeds=1, schedule={})[0].shortcut_bn is False, s


def test_design_missing_folder_blocks_launch_with_a_message(app_cache, tmp_path):
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("folder").run()
    at.text_input(key="design_folder").input(str(tmp_path / "no-such-images")).run()
    assert not at.exception
    assert any("was not found" in e.value and "train/" in e.value for e in at.error)
    assert at.button(key="design_launch").disabled


def test_error_messages_are_literal_and_say_what_to_do():
    from explorer.guard import advice, md_escape
    from trainers.core.errors import ConfigError, DataError

    msg = advice(DataError("could not download CIFAR-10 (no internet); use folder:PATH/*.jpg"))
    assert "Local folder / tarball" in msg and r"\*\.jpg" in msg
    assert "Change the field" in advice(ConfigError("depth must be 6n+2"))  # caught by class, not name
    assert md_escape("costs $5") == r"costs \$5"  # no LaTeX in the browser
    assert "RESNET_EXPLORER_CACHE" in advice(PermissionError("cache/store"))


@pytest.mark.parametrize("page", ["compare", "learn"])
def test_table5_rows_are_shown_not_trained_here(app_cache, page):
    at = open_page(page)
    assert_clean(at)
    table = next(d.value for d in at.dataframe if "top-1 error %" in d.value.columns)
    assert len(table) == 7 and set(table["status"]) == {"not trained here"}
    assert {"train crop", "test crop"} <= set(table.columns)  # the crop size per row (issue #18)
    assert any("ImageNet folder" in c.value and "single-crop" in c.value for c in at.caption)


# --- issue 14: what a newcomer sees ---------------------------------------------------------------


def chart_traces(at: AppTest, i: int = 0) -> list[dict]:
    return json.loads(at.get("plotly_chart")[i].proto.spec)["data"]


def values(v) -> list[float]:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata": base64}."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def test_live_overlays_every_running_run_with_steady_speed_and_a_loading_step(app_cache, monkeypatch):
    from trainers.runs import Store

    monkeypatch.setattr("explorer.runs_api.wake_supervisor", lambda: None)  # nobody reclaims the runs

    a, b = RunConfig(**SMOKE), RunConfig(**{**SMOKE, "seed": 1})
    add_run(app_cache, a, status="running")
    add_run(app_cache, b, status="running")
    starting = RunConfig(**{**SMOKE, "seed": 2})
    with Store(app_cache) as s:  # claimed by a worker that is still loading its data
        s.create(starting.to_dict(), starting.label(), starting.key)
        s.claim(starting.key, "local", "cpu")
    at = open_page("live")
    assert_clean(at)
    texts = [p.proto.text for p in at.get("progress")]
    assert any("loading the dataset" in t for t in texts)
    # the run average: 123 img/s windows, but 5 iterations of batch 128 per second of elapsed time
    assert any("640 img/s (run average)" in t for t in texts), texts
    names = {t["name"]: t for t in chart_traces(at) if t.get("name", "").endswith("test error")}
    assert len(names) == 2  # every running run with points overlaid (the starting one has none yet)
    colours = figures.assign_colors([starting.key, b.key, a.key])
    for cfg in (a, b):
        trace = next(t for n, t in names.items() if f"seed {cfg.seed}" in n)
        assert trace["line"]["color"] == colours[cfg.key]
    at.selectbox(key="live_x").set_value("elapsed_s").run()
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["xaxis"]["title"]["text"] == "wall time (minutes)"


def test_compare_plots_the_latest_groups_in_each_runs_own_colour(app_cache):
    import time as _time

    cfgs = [RunConfig(**{**SMOKE, "depth": d}) for d in (8, 14, 20, 26, 32)]
    for cfg in cfgs:  # oldest first
        add_run(app_cache, cfg, test_error=10.0)
        _time.sleep(0.01)
    at = open_page("compare")
    assert_clean(at)
    plotted = {t["name"].split(":")[0] for t in chart_traces(at) if t.get("name", "").endswith("test error")}
    assert plotted == {c.label() + " [synthetic, 20 it]" for c in cfgs[1:]}  # the newest four, not the oldest
    trace = next(t for t in chart_traces(at) if t.get("name", "").startswith(cfgs[-1].label()))
    assert trace["line"]["color"] in figures.PALETTE
    assert any("latest 4 group" in c.value for c in at.caption)
    # ours beside the paper right after the run's name: visible at 1400 px
    order = list(at.dataframe[0].proto.column_order)
    assert order[:4] == ["run", "ours", "paper", "difference"]


def test_compare_smooths_the_loss_not_the_test_error_and_offers_epochs(app_cache):
    cfg = RunConfig(**SMOKE)
    add_run(app_cache, cfg, test_error=10.0, points=6)
    at = open_page("compare", {"smooth": "0.8", "x": "epochs"})
    assert_clean(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"] == "epochs"
    names = [t.get("name", "") for t in spec["data"]]
    assert any(n.endswith("train loss (raw)") for n in names)  # drawn faintly behind
    err = next(t for t in spec["data"] if t.get("name", "").endswith("test error"))
    assert values(err["y"])[-1] == pytest.approx(10.0 + 20.0 / 6)  # the last measured value, unsmoothed


def test_compare_shows_what_differs_and_tags_and_deletes_runs(app_cache):
    from trainers.runs import Store

    a, b = RunConfig(**SMOKE), RunConfig(**{**SMOKE, "ordering": "full_preact", "seed": 3})
    add_run(app_cache, a)
    add_run(app_cache, b)
    at = open_page("compare")
    diff = at.dataframe[1].value  # after the results table
    assert set(diff["field"]) == {"ordering", "seed"}
    at.multiselect(key="manage_runs").set_value([a.key]).run()
    at.text_input(key="manage_tags").input("baseline, cpu").run()
    at.button(key="manage_tag_go").click().run()
    assert_clean(at)
    with Store(app_cache) as s:
        assert s.get(a.key)["tags"] == ["baseline", "cpu"]
    assert any("#baseline" in o for o in at.multiselect(key="compare_groups").options)
    at.multiselect(key="manage_runs").set_value([b.key]).run()
    assert at.button(key="manage_delete_go").disabled  # not before the box is ticked
    at.checkbox(key="manage_sure").check().run()
    at.button(key="manage_delete_go").click().run()
    assert_clean(at)
    with Store(app_cache) as s:
        assert s.get(b.key) is None and s.get(a.key) is not None


def test_design_refuses_an_empty_or_unusable_dataset_path_before_launch(app_cache, tmp_path):
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("folder").run()
    label = at.text_input(key="design_folder").label
    assert "`train/<class>/*.jpg`" in label  # code, not italics
    at.text_input(key="design_folder").input("").run()
    assert_clean(at) if not at.error else None
    assert any("Give the path" in w.value for w in at.warning)
    assert at.button(key="design_launch").disabled
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"x")
    for path, says in (
        (Path(__file__).resolve().parents[1] / "README.md", "neither a folder"),
        (tmp_path / "flat", "needs train/ and test/"),
    ):
        at.text_input(key="design_folder").input(str(path)).run()
        assert not at.exception
        assert any(says in e.value for e in at.error), [e.value for e in at.error]
        assert at.button(key="design_launch").disabled


def test_design_shortcut_fields_take_the_engines_bounds(app_cache):
    from trainers.core.config import PARAM_BOUNDS

    at = open_page("design")
    at.multiselect(key="design_shortcuts").set_value(["constant", "exclusive_gate"]).run()
    assert at.selectbox(key="design_exclusive_gate_shortcut_bn").value == "auto"  # issue #18, item 1
    at.text_input(key="design_constant_shortcut_scale").input("-5").run()
    at.text_input(key="design_exclusive_gate_gate_bias").input("1e9").run()
    lo, hi = PARAM_BOUNDS["shortcut_scale"]
    errors = [e.value for e in at.error]
    assert any(f"-5 is outside the accepted range {lo:g} to {hi:g}" in e for e in errors), errors
    assert any("1e9 is outside" in e for e in errors)
    with pytest.raises(ConfigError, match="gate_bias must be between"):
        RunConfig(shortcut="exclusive_gate", gate_bias=1e9)


def test_the_apps_torch_work_takes_one_thread_beside_a_cpu_run(app_cache, monkeypatch):
    import torch

    from explorer import polling

    monkeypatch.setattr(polling, "active_runs", lambda: [])
    with polling.app_threads() as n:
        assert n == torch.get_num_threads()
    monkeypatch.setattr(polling, "active_runs", lambda: [{"status": "running", "device": "cpu", "backend": "local"}])
    before = torch.get_num_threads()
    with polling.app_threads() as n:
        assert n == 1 and torch.get_num_threads() == 1 or before == 1
    assert torch.get_num_threads() == before


def test_estimates_come_from_finished_runs_averages():
    from explorer import estimate

    cfg = RunConfig(depth=20, iterations=300, batch_size=128)
    curve = [
        {"type": "metrics", "iteration": i, "elapsed_s": 25.0 + i / 2, "images_per_s": 999.0}
        for i in range(10, 301, 10)
    ]  # 2 it/s after 25 s of loading; the windows lie (999)
    rec = {
        "status": "done",
        "config": RunConfig(depth=20, ordering="full_preact").to_dict(),
        "result": {"provenance": {"hostname": "here", "device": "cpu"}},
        "updated_at": 1,
    }
    sp = estimate.speed_from_history([rec], cfg, lambda r: curve, host="here")
    assert sp["images_per_s"] == pytest.approx(256.0) and sp["startup_s"] == pytest.approx(25.0)
    assert estimate.speed_from_history([rec], cfg, lambda r: curve, host="elsewhere") is None
    seconds = estimate.run_seconds(cfg, sp["images_per_s"], startup_s=sp["startup_s"], includes_eval=True)
    assert seconds == pytest.approx(25.0 + 150.0)
    assert figures.run_rate(curve, 128, 300)["images_per_s"] == pytest.approx(256.0)


def test_short_schedules_keep_the_papers_warm_up():
    from trainers.core.presets import SCHEDULES, preset_configs

    # every schedule but `glance`, the shipped CPU reference runs' (documented in presets.py)
    assert all(RunConfig(**s).warmup_iterations > 0 for name, s in SCHEDULES.items() if name != "glance")
    assert all(c.warmup_iterations > 0 and c.warmup_lr == 0.01 for c in preset_configs("table2", 1, "quick"))


def test_learn_explains_forward_and_backward_in_the_papers_terms_and_captions_bottlenecks(app_cache):
    at = open_page("learn", {"learn_tab": "Signal through depth", "depth": "8", "batch": "4"})
    assert_clean(at)
    text = " ".join(m.value for m in at.markdown)
    assert "Eq. 5" in text and "identity term" in text
    assert "**Forward (left):**" in text and "**Backward (right):**" in text
    # issue #18, item 4: the gates' Π (1 − g) says which mode it draws, in the registry's numbers
    captions = " ".join(c.value for c in at.caption)
    assert "training mode" in captions and "0.80 drawn, 0.87 with sigmoid(b_g)" in captions
    at = open_page("learn")
    captions = [c.value for c in at.caption]
    assert "3×3 conv → BN → ReLU → 3×3 conv → BN → (+) → ReLU" in captions  # (a), basic units
    at.segmented_control(key="learn_block").set_value("bottleneck").run()
    assert_clean(at)
    captions = [c.value for c in at.caption]
    assert any(c.startswith("BN → ReLU → 1×1 conv") and c.endswith("1×1 conv → (+)") for c in captions), captions


def test_a_grid_launched_here_is_a_results_table_on_the_command_line(app_cache, monkeypatch, capsys):
    import argparse

    from trainers.runs import Store
    from trainers.runs.verbs import cmd_results

    at = smoke_design(app_cache, monkeypatch)
    at.text_input(key="design_sweep_custom").input("my-grid").run()
    planned = list(at.dataframe[0].value["key"])
    at.button(key="design_launch").click().run()
    with Store(app_cache) as s:
        assert s.get_sweep("my-grid")["keys"] == planned
    args = argparse.Namespace(name="my-grid", json=True, cache_dir=str(app_cache))
    assert cmd_results(args) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2  # both rows of the grid, none finished yet
    args = argparse.Namespace(name="table4", json=False, cache_dir=str(app_cache))
    assert cmd_results(args) == 0
    out = capsys.readouterr().out
    assert "no run matches 'table4'" in out and "my-grid" in out


def test_design_checks_a_tarballs_layout_without_decoding_it(app_cache, tmp_path):
    from cifar_fixtures import make_tarball, write_image_folder

    write_image_folder(tmp_path / "good", ["cat", "dog"], per_class=2, n_test=1)
    good = make_tarball(tmp_path / "good", tmp_path / "good.tar.gz")
    write_image_folder(tmp_path / "half", ["cat", "dog"], per_class=2, n_test=1)
    import shutil

    shutil.rmtree(tmp_path / "half" / "test")
    half = make_tarball(tmp_path / "half", tmp_path / "half.tar.gz")
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("folder").run()
    at.text_input(key="design_folder").input(str(good)).run()
    assert_clean(at)
    assert not at.button(key="design_launch").disabled
    at.text_input(key="design_folder").input(str(half)).run()
    assert any("needs train/ and test/" in e.value and "found:" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    assert at.button(key="design_launch").disabled


def test_design_estimates_from_what_finished_runs_took_here(app_cache):
    add_run(app_cache, RunConfig(**{**SMOKE, "iterations": 40}), points=4)  # 10 it per second of wall time
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("synthetic")
    at.radio(key="design_schedule").set_value("smoke")
    at.selectbox(key="design_depth_basic").set_value(8)
    at.run()
    assert_clean(at)
    text = " ".join(m.value for m in at.markdown)
    assert "1,280 images/s" in text and "average speed of the last 1 finished run(s) of this shape" in text, text
    assert "test stub" not in text  # no benchmark needed


def test_live_keeps_working_when_a_chosen_curve_leaves_the_page(app_cache, monkeypatch):
    from trainers.runs import Store

    monkeypatch.setattr("explorer.runs_api.wake_supervisor", lambda: None)
    a, b = RunConfig(**SMOKE), RunConfig(**{**SMOKE, "seed": 1})
    add_run(app_cache, a, status="running")
    add_run(app_cache, b, status="running")
    at = open_page("live")
    at.multiselect(key="live_curves").set_value([a.key]).run()
    assert len([t for t in chart_traces(at) if t.get("name", "").endswith("test error")]) == 1
    with Store(app_cache) as s:
        s.delete(a.key)
    at.run()
    assert_clean(at)
    assert [t["name"] for t in chart_traces(at) if t.get("name", "").endswith("test error")] == [
        f"{b.label()} · seed 1: test error"
    ]


# --- reference runs (shipped packs) ----------------------------------------------------------------


@pytest.fixture
def reference_dir(reference_pack_file, monkeypatch) -> Path:
    monkeypatch.setenv("RESNET_EXPLORER_REFERENCE", str(reference_pack_file.parent))
    return reference_pack_file.parent


def _tables(at: AppTest) -> list:
    """The page's tables but Table 5's reference rows (an expander on Compare and Learn)."""
    return [d for d in at.dataframe if "top-1 error %" not in d.value.columns]


def _chart_traces(at: AppTest) -> list[dict]:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)["data"]


def test_compare_first_start_opens_on_the_reference_comparison(app_cache, reference_dir):
    from explorer.components.reference_view import COLOURS, PREFIX

    at = open_page("compare")
    assert_clean(at)
    assert len(_tables(at)) == 1
    table = _tables(at)[0].value
    assert [r.split(" (")[0] for r in table["run"]] == [
        PREFIX + "ResNet-8 original / identity",
        PREFIX + "ResNet-8 full_preact / identity",
    ]
    assert set(table["device"]) == {next(iter(table["device"]))} and table["device"][0].startswith("CPU")
    traces = _chart_traces(at)
    assert {t["line"]["color"] for t in traces if t.get("name", "").endswith("test error")} <= set(COLOURS)
    at.toggle(key="ref_show").set_value(False).run()  # reference runs can be hidden
    assert_clean(at)
    assert not _tables(at) and not at.get("plotly_chart")


def test_a_users_run_of_a_reference_config_stays_the_users(app_cache, reference_dir):
    from explorer.components.reference_view import PREFIX
    from trainers.core.reference_packs import read_pack

    run = read_pack(next(reference_dir.glob("*.json")))["runs"][0]
    add_run(app_cache, RunConfig.from_dict(run["config"]), test_error=42.0)
    at = open_page("compare", {"ref": run["key"]})
    assert_clean(at)
    assert len(_tables(at)) == 1
    table = _tables(at)[0].value  # the user's results: no reference row in it
    assert len(table) == 1 and not table["run"][0].startswith(PREFIX)
    assert at.multiselect(key="ref_overlay").value == [run["key"]]
    names = [t.get("name", "") for t in _chart_traces(at)]
    assert any(n.startswith(PREFIX) for n in names) and any(n.startswith("ResNet-8") for n in names)


def test_learn_offers_no_concept_link_when_single_runs_cannot_show_it(app_cache, reference_dir):
    at = open_page("learn")  # the pack: one seed each of original and full pre-activation
    assert_clean(at)
    labels = [p.proto.label for p in at.get("page_link")]
    assert not [label for label in labels if "trained" in label]


# --- issue #17: the campaign view (Table 1 on the paper's schedule, partial runs) ------------------


def _pack_dir(tmp_path: Path, doc: dict) -> Path:
    from trainers.core.reference_packs import dumps

    d = tmp_path / "refpack"
    d.mkdir(parents=True, exist_ok=True)
    (d / "campaign.json").write_text(dumps(doc))
    return d


def _separated(doc: dict) -> dict:
    """The campaign pack with the constant-scaling run's losses doubled: far beyond the identity
    seeds' spread (the tiny real runs differ by chance only)."""
    import copy

    doc = copy.deepcopy(doc)
    for run in doc["runs"]:
        if run["config"]["shortcut"] == "constant":
            for p in run["curve"]:
                if p.get("train_loss") is not None:
                    p["train_loss"] *= 2
    return doc


@pytest.mark.slow
def test_compare_first_start_opens_on_the_campaign_with_markers_band_and_an_honest_caption(
    app_cache, campaign_pack_file, monkeypatch
):
    monkeypatch.setenv("RESNET_EXPLORER_REFERENCE", str(campaign_pack_file.parent))
    at = open_page("compare")
    assert_clean(at)
    assert [h.value for h in at.subheader if h.value.startswith("Table 1 on ResNet-8")] == [
        "Table 1 on ResNet-8: the first 4 iterations (of the paper's 64,000)"
    ]
    caption = " ".join(c.value for c in at.caption)
    assert "n = 2" in caption and "n = 1" in caption and "synthetic" in caption and "CPU" in caption
    assert "spread" in caption and "rough yardstick" in caption
    table = _tables(at)[0].value
    assert set(table["iterations"]) == {"4 of 64,000"}
    traces = _chart_traces(at)
    names = [t.get("name", "") for t in traces]
    assert any("median of 2" in n for n in names)  # the identity pair: median and band
    assert any(t.get("fill") == "toself" for t in traces)
    # the paper's final numbers are markers at the end of the schedule; the axis is log by default
    # (synthetic data: the paper has no number for it, so none here), and the x axis can be the
    # fraction of the schedule
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert layout["xaxis"]["type"] == "log"
    at.segmented_control(key="ref_x").set_value("fraction of the paper's 64k schedule").run()
    assert_clean(at)
    xs = [x for t in _chart_traces(at) if t.get("name", "").endswith("train loss") for x in values(t["x"])]
    assert xs and max(xs) == pytest.approx(4 / 64_000)


@pytest.mark.slow
def test_campaign_markers_put_the_papers_number_at_64k(app_cache, campaign_pack_file, monkeypatch, tmp_path):
    import copy

    from trainers.core.reference_packs import read_pack

    doc = copy.deepcopy(read_pack(campaign_pack_file))
    for run in doc["runs"]:  # as if ResNet-110 on the JPEG copy of CIFAR-10: the paper has rows for them
        run["config"].update(dataset="folder:../shared/data/cifar10-jpeg.tar.gz", depth=110)
        run["key"] = RunConfig.from_dict(run["config"]).key
    monkeypatch.setenv("RESNET_EXPLORER_REFERENCE", str(_pack_dir(tmp_path, doc)))
    at = open_page("compare")
    assert_clean(at)
    markers = {
        t["name"]: (values(t["x"]), values(t["y"]))
        for t in _chart_traces(at)
        if t.get("name", "").startswith("paper at 64k")
    }
    assert any(v == ([64_000], [6.61]) for v in markers.values()), markers  # the original's 6.61 %


@pytest.mark.slow
def test_learn_links_a_concept_only_where_the_runs_show_it(app_cache, campaign_pack_file, monkeypatch, tmp_path):
    from trainers.core.reference_packs import read_pack

    doc = read_pack(campaign_pack_file)
    monkeypatch.setenv("RESNET_EXPLORER_REFERENCE", str(_pack_dir(tmp_path, doc)))
    from trainers.core import reference_packs as ref

    # the identity-shortcut link sits on Learn's Shortcuts tab (only the open tab renders)
    if not ref.concept_runs(doc, "identity shortcut"):  # 4 tiny iterations: usually no separation
        at = open_page("learn", {"learn_tab": "Shortcuts"})
        assert_clean(at)
        assert not [p for p in at.get("page_link") if "identity shortcut" in p.proto.label]
    monkeypatch.setenv("RESNET_EXPLORER_REFERENCE", str(_pack_dir(tmp_path / "sep", _separated(doc))))
    at = open_page("learn", {"learn_tab": "Shortcuts"})
    assert_clean(at)
    labels = [p.proto.label.replace("\\", "") for p in at.get("page_link")]  # markdown-escaped
    links = [label for label in labels if "See identity shortcut trained" in label]
    assert len(links) == 1 and "constant" in links[0] and "2 seeds" in links[0]
