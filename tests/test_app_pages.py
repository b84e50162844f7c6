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

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = {
    "design": "explorer/pages/design.py",
    "live": "explorer/pages/live.py",
    "compare": "explorer/pages/compare.py",
    "learn": "explorer/pages/learn.py",
    "system": "explorer/pages/system.py",
}
TITLES = {"design": "Design & launch", "live": "Live", "compare": "Compare",
          "learn": "Learn: why identity mappings", "system": "Data & system"}
SMOKE = dict(depth=8, dataset="synthetic", iterations=20, train_size=256, test_size=128,
             warmup_iterations=0, log_every=2, eval_every=10)


@pytest.fixture
def app_cache(cache_dir: Path, monkeypatch) -> Path:
    monkeypatch.setenv("RESNET_EXPLORER_CACHE", str(cache_dir))
    monkeypatch.setenv("TRAINERS_IDLE_EXIT_S", "3")
    # the Design page's speed benchmark: a fixed, instant answer (the real one is tested by use)
    monkeypatch.setattr("explorer.estimate.benchmark", lambda cfg, batch=16, steps=2, device="auto": {
        "images_per_s": 100.0, "device": "cpu", "batch": batch, "steps": steps, "basis": "test stub"})
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
        s.apply_event(cfg.key, att, {"type": "start", "iteration": 0, "total": cfg.iterations, "device": "cpu",
                                     "device_name": "CPU", "precision": "fp32", "parameters": 1,
                                     "dataset": "x", "resumed": False})
        step = max(1, cfg.iterations // points)
        for i in range(1, points + 1):
            s.apply_event(cfg.key, att, {"type": "metrics", "iteration": i * step, "epoch": 0.1 * i,
                                         "train_loss": 2.0 / i, "train_error": 50.0, "lr": 0.1,
                                         "images_per_s": 123.0, "elapsed_s": i, "eta_s": 10.0})
            s.apply_event(cfg.key, att, {"type": "eval", "iteration": i * step, "epoch": 0.1 * i,
                                         "test_error": test_error + 20.0 / i, "test_loss": 1.0})
        if status != "running":
            s.finish(cfg.key, att, {"key": cfg.key, "status": status, "test_error": test_error,
                                    "iterations": cfg.iterations, "train_loss": 0.5})


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


def test_design_launch_queues_runs_and_opens_live(app_cache, monkeypatch):
    from trainers.runs import submit

    monkeypatch.setattr("explorer.runs_api.submit_all", lambda cfgs, backend="local": [
        submit(c, cache_dir=app_cache, backend=backend, start_supervisor=False) for c in cfgs])
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("synthetic")
    at.radio(key="design_schedule").set_value("smoke")
    at.selectbox(key="design_depth_basic").set_value(8)
    at.run()
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


# --- Compare -------------------------------------------------------------------------------------

def test_compare_groups_seeds_beside_the_paper_and_lives_in_the_url(app_cache):
    from trainers.core.presets import PRESETS

    row = next(r for r in PRESETS["table2"].rows if r.label.startswith("full pre-activation, ResNet-110"))
    for seed, err in enumerate((6.0, 7.0, 6.5)):
        add_run(app_cache, row.config(iterations=40, seed=seed), test_error=err)
    add_run(app_cache, RunConfig(**SMOKE), test_error=55.0)
    group = figures.group_key(row.config(iterations=40).to_dict())
    at = open_page("compare", {"g": group, "smooth": "0.5"})
    assert_clean(at)
    assert at.multiselect(key="compare_groups").value == [group]
    assert at.slider(key="smooth").value == 0.5
    table = at.dataframe[0].value
    assert len(table) == 1
    r = table.iloc[0]
    assert (r["n"], r["ours"], r["min"], r["max"], r["paper"], r["difference"]) == (
        3, "6.50", "6.00", "7.00", "6.37", "+0.13")
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
    t = plan.grid_templates(["original", "full_preact"], ["identity", "constant"],
                            {"constant": {"shortcut_scale": [0.0, 0.5], "residual_scale": [1.0]}},
                            "basic", 20)
    assert len(t) == 2 * (1 + 2)
    cfgs = plan.make_configs(t + t[:1], seeds=2, schedule={"iterations": 30}, overrides={"dataset": "synthetic"})
    assert len(cfgs) == 12 and all(c.iterations == 30 and c.dataset == "synthetic" for c in cfgs)
    assert [c.seed for c in cfgs[:6]] == [0] * 6  # seed-major, like preset_configs
    assert plan.parse_values("0, 0.5,0.5", "λ") == [0.0, 0.5]
    with pytest.raises(ConfigError, match="not a number"):
        plan.parse_values("a", "λ")
    assert plan.depth_choices("bottleneck")[:2] == [11, 20] and 164 in plan.depth_choices("bottleneck")
    assert plan.plan_state(None) == "new" and plan.plan_state({"status": "cancelled"}) == "resume"


def test_design_missing_folder_blocks_launch_with_a_message(app_cache, tmp_path):
    at = open_page("design")
    at.selectbox(key="design_dataset").set_value("folder").run()
    at.text_input(key="design_folder").input(str(tmp_path / "no-such-images")).run()
    assert not at.exception
    assert any("was not found" in e.value and "train/" in e.value for e in at.error)
    assert at.button(key="design_launch").disabled


def test_error_messages_are_literal_and_say_what_to_do():
    from explorer.guard import advice, md_escape

    class DataError(Exception):
        pass

    msg = advice(DataError("could not download CIFAR-10 (no internet); use folder:PATH/*.jpg"))
    assert "Local folder / tarball" in msg and r"\*\.jpg" in msg
    assert md_escape("costs $5") == r"costs \$5"  # no LaTeX in the browser
    assert "RESNET_EXPLORER_CACHE" in advice(PermissionError("cache/store"))


# --- reference runs (shipped packs) ----------------------------------------------------------------

@pytest.fixture
def reference_dir(reference_pack_file, monkeypatch) -> Path:
    monkeypatch.setenv("RESNET_EXPLORER_REFERENCE", str(reference_pack_file.parent))
    return reference_pack_file.parent


def _chart_traces(at: AppTest) -> list[dict]:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)["data"]


def test_compare_first_start_opens_on_the_reference_comparison(app_cache, reference_dir):
    from explorer.components.reference import COLOURS, PREFIX

    at = open_page("compare")
    assert_clean(at)
    assert len(at.dataframe) == 1
    table = at.dataframe[0].value
    assert [r.split(" (")[0] for r in table["run"]] == [
        PREFIX + "ResNet-8 original / identity", PREFIX + "ResNet-8 full_preact / identity"]
    assert set(table["device"]) == {next(iter(table["device"]))} and table["device"][0].startswith("CPU")
    traces = _chart_traces(at)
    assert {t["line"]["color"] for t in traces if t.get("name", "").endswith("test error")} <= set(COLOURS)
    at.toggle(key="ref_show").set_value(False).run()  # reference runs can be hidden
    assert_clean(at)
    assert not at.dataframe and not at.get("plotly_chart")


def test_a_users_run_of_a_reference_config_stays_the_users(app_cache, reference_dir):
    from explorer.components.reference import PREFIX
    from trainers.core.reference import read_pack

    run = read_pack(next(reference_dir.glob("*.json")))["runs"][0]
    add_run(app_cache, RunConfig.from_dict(run["config"]), test_error=42.0)
    at = open_page("compare", {"ref": run["key"]})
    assert_clean(at)
    assert len(at.dataframe) == 1
    table = at.dataframe[0].value  # the user's results: no reference row in it
    assert len(table) == 1 and not table["run"][0].startswith(PREFIX)
    assert at.multiselect(key="ref_overlay").value == [run["key"]]
    names = [t.get("name", "") for t in _chart_traces(at)]
    assert any(n.startswith(PREFIX) for n in names) and any(n.startswith("ResNet-8") for n in names)


def test_learn_links_a_concept_to_its_reference_curves(app_cache, reference_dir):
    at = open_page("learn")
    assert_clean(at)
    labels = [p.proto.label.replace("\\", "") for p in at.get("page_link")]  # markdown-escaped
    links = [label for label in labels if label.startswith("See pre-activation trained")]
    assert links and "full_preact / identity vs ResNet-8 original / identity" in links[0]
