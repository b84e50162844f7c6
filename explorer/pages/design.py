"""Design & launch: orderings × shortcut types (or a paper preset), data, schedule, seeds; what is
already cached or running; an honest time estimate; one button to launch the new runs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from explorer import estimate, polling, runs_api
from explorer.app_settings import jpeg_copy_spec
from explorer.components.pickers import backend_picker, dataset_picker, network_picker, schedule_picker, seeds_picker
from explorer.engine_api import check_folder, dataset_info
from explorer.figures import format_duration
from explorer.guard import md_escape, page_guard, show_error
from explorer.plan import grid_templates, make_configs, plan_frame
from trainers.core import presets
from trainers.core.config import RunConfig
from trainers.core.errors import ConfigError, DataError

CUSTOM = "custom"


@st.cache_data(show_spinner=False, max_entries=32)
def _benchmark(cfg_json: str, batch: int) -> dict:
    with polling.app_threads():  # one thread while a run trains on the CPU beside the app
        return estimate.benchmark(RunConfig.from_json(cfg_json), batch=batch)


def preset_labels(presets: dict) -> dict[str, str]:
    """'Table 2'; where two presets share a table, 'Table 3 · CIFAR-10 and CIFAR-100'."""
    short = {n: p.title.split(":")[0] for n, p in presets.items()}
    twice = {t for t in short.values() if list(short.values()).count(t) > 1}
    return {n: f"{t} · {presets[n].title.rsplit(',', 1)[-1].strip()}" if t in twice else t for n, t in short.items()}


def choose_templates(presets) -> tuple[list[dict], str]:
    """Preset rows or a custom grid -> (RunConfig templates, source name)."""
    names = [CUSTOM, *presets.PRESETS]
    titles = {CUSTOM: "Custom grid", **preset_labels(presets.PRESETS)}
    source = st.segmented_control(
        "Start from", names, default=CUSTOM, format_func=lambda n: titles[n], key="design_source", required=True
    )
    if source == CUSTOM:
        net = network_picker()
        if not net["ok"]:
            return [], source
        if not net["orderings"] or not net["shortcuts"]:
            st.info("Pick at least one ordering and one shortcut type.")
            return [], source
        return grid_templates(net["orderings"], net["shortcuts"], net["params"], net["block"], net["depth"]), source
    preset = presets.PRESETS[source]
    st.markdown(f"**{preset.title}** — the paper reports the median of 5 runs.")
    labels = [r.label for r in preset.rows]
    chosen = st.multiselect("Rows", labels, default=labels, key=f"design_rows_{source}")
    rows = [r for r in preset.rows if r.label in chosen]
    st.dataframe(
        [{"row": r.label, "paper": r.paper_text(), "remark": r.remark} for r in rows], hide_index=True, width="stretch"
    )
    return [dict(r.template) for r in rows], source


def speed_for(cfg: RunConfig, records: Sequence[Mapping[str, Any]], progress) -> dict:
    hist = estimate.speed_from_history(records, cfg, runs_api.curve)
    if hist:
        return hist
    progress(f"measuring the speed of ResNet-{cfg.depth} ({cfg.block}) on this machine…")
    # variants of one depth cost about the same: time the original/identity net of that shape
    probe = cfg.replace(ordering="original", shortcut="identity", seed=0)
    return _benchmark(probe.canonical_json(), estimate.bench_batch(cfg))


@st.fragment(parallel=True)
def estimate_panel(todo_json: list[str], records: Sequence[Mapping[str, Any]]) -> None:
    """Time estimate of the new runs. A parallel fragment: the plan and the launch button do not
    wait for the benchmark."""
    with page_guard("estimate"):
        todo = [RunConfig.from_json(j) for j in todo_json]
        seconds, bases, speeds = {}, [], {}
        bar = st.progress(0.0, text="estimating…")
        for i, cfg in enumerate(todo):
            shape = estimate.shape_key(cfg.to_dict())
            if shape not in speeds:
                speeds[shape] = speed_for(cfg, records, lambda t, i=i: bar.progress(i / len(todo), text=t))
                sp = speeds[shape]
                bases.append(
                    f"ResNet-{cfg.depth} ({cfg.block}, batch {cfg.batch_size}): "
                    f"{sp['images_per_s']:,.0f} images/s — {sp['basis']}"
                )
            sp = speeds[shape]
            seconds[cfg.key] = estimate.run_seconds(
                cfg,
                sp["images_per_s"],
                startup_s=sp.get("startup_s", 0.0),
                includes_eval=sp.get("includes_eval", False),
            )
        bar.empty()
        total = sum(seconds.values())
        c1, c2 = st.columns([1, 3])
        c1.metric(
            "estimated time, one after another",
            format_duration(total),
            help="Sum of the new runs' estimates; with several GPUs (or workers) they run side by side.",
        )
        per_run = sorted({format_duration(s) for s in seconds.values()})
        c2.markdown(f"Per run: {', '.join(per_run)}.  \n" + "  \n".join(f"Basis: {b}." for b in bases))
        c2.caption(
            "Start-up (loading the data) + training images ÷ measured speed, plus the test "
            "evaluations (forward only, about a third of the cost) where the speed does not "
            "already include them. Other jobs on the same machine slow every run down."
        )


@st.cache_data(show_spinner="checking the dataset's layout…", max_entries=32)
def _folder_layout(spec: str, size: int | None, mtime_ns: int) -> str | None:
    """The engine's layout check of a folder dataset (no image decoded), cached per file version:
    None when it is fine, else the message."""
    try:
        check_folder(spec)
    except DataError as e:
        return str(e)
    return None


def check_datasets(configs: list[RunConfig]) -> bool:
    """Say which datasets are here, which will download, and which cannot be used (not found, not
    a folder or archive, no train/ and test/ class folders): those block Launch."""
    from pathlib import Path

    ok = True
    for spec in sorted({c.dataset for c in configs}):
        try:
            info = dataset_info(spec)
        except DataError as e:
            show_error(e, "dataset")
            ok = False
            continue
        # the shared JPEG copy's layout is known; a path the user typed is checked before Launch
        if info.get("present") and spec.startswith("folder:") and not info.get("decoded") and spec != jpeg_copy_spec():
            path = Path(info["path"])
            st_ = path.stat()
            problem = _folder_layout(spec, st_.st_size if path.is_file() else None, st_.st_mtime_ns)
            if problem:
                st.error(f"This dataset cannot be used: {md_escape(problem)}")
                ok = False
            continue
        if info.get("present"):
            continue
        if info.get("downloadable"):
            st.warning(
                f"{info.get('label', spec)} is not in the cache yet: the first run downloads it "
                "(needs internet). Offline? Choose **CIFAR-10 (JPEG copy, offline)** or a local folder."
            )
        else:
            st.error(
                f"{md_escape(spec[7:] if spec.startswith('folder:') else spec)} was not found. Give the "
                "path of a folder (or .tar.gz) with `train/<class>/*.jpg` and `test/<class>/*.jpg`; "
                "relative paths start at the repository root."
            )
            ok = False
    return ok


def sweep_name_input(source: str) -> str:
    """The name the launched runs are remembered under, so `python -m trainers results NAME`
    tabulates a grid made here as it does a sweep started from the command line."""
    default = source if source != CUSTOM else f"ui-{time.strftime('%Y-%m-%d')}"
    name = st.text_input(
        "Remember as (for `python -m trainers results NAME`)",
        default,
        key=f"design_sweep_{source}",
        help="Launching again under the same name adds to that table.",
    )
    return name.strip() or default


def launch(configs: list[RunConfig], backend: str, sweep: str = "", planned: Sequence[RunConfig] = ()) -> None:
    with st.status(f"Submitting {len(configs)} run(s)…", expanded=False) as status:
        recs = runs_api.submit_all(configs, backend=backend)
        if sweep:  # the whole plan, cached runs included: the table shows the grid as designed
            runs_api.save_sweep(sweep, [c.key for c in (planned or configs)])
        polling.changed()
        status.update(label=f"Submitted {len(recs)} run(s)", state="complete")
    st.session_state["live_focus"] = configs[0].key
    st.switch_page("explorer/pages/live.py")


def body() -> None:
    templates, source = choose_templates(presets)
    st.divider()
    c1, c2 = st.columns([3, 2])
    with c1:
        sched_name, schedule = schedule_picker(presets.SCHEDULES, getattr(presets, "SCHEDULE_NOTES", {}))
    with c2:
        dataset, dataset_ok = dataset_picker(per_row=source != CUSTOM)
    c3, c4 = st.columns([1, 2])
    with c3:
        seeds = seeds_picker()
    with c4:
        backend = backend_picker()
    if not templates:
        return
    if not dataset_ok:
        st.button(
            "Launch",
            type="primary",
            disabled=True,
            key="design_launch",
            icon=":material/rocket_launch:",
            help="Choose a dataset first.",
        )
        return
    overrides = {"dataset": dataset} if dataset else {}
    try:
        configs = make_configs(templates, seeds=seeds, schedule=schedule, overrides=overrides)
    except ConfigError as e:
        show_error(e, "design")
        return

    st.subheader(f"Plan: {len(configs)} run(s)")
    records = runs_api.list_runs()
    by_key = {r["key"]: r for r in records}
    frame = plan_frame(configs, by_key)
    todo = [c for c, state in zip(configs, frame["state"]) if state in ("new", "resume")]
    counts = frame["state"].value_counts()
    m = st.columns(3)
    m[0].metric("new", int(counts.get("new", 0) + counts.get("resume", 0)))
    m[1].metric("cached", int(counts.get("cached", 0)))
    m[2].metric("running / queued", int(counts.get("running", 0) + counts.get("queued", 0)))
    st.dataframe(frame, hide_index=True, width="stretch")
    if todo:
        estimate_panel([c.canonical_json() for c in todo], records)
    data_ok = check_datasets(todo or configs)
    sweep = sweep_name_input(source) if todo else ""
    label = f"Launch {len(todo)} new run(s)" if todo else "Nothing new to launch"
    if st.button(
        label, type="primary", disabled=not todo or not data_ok, key="design_launch", icon=":material/rocket_launch:"
    ):
        launch(todo, backend, sweep, configs)
    if not todo:
        st.page_link(
            "explorer/pages/compare.py",
            label="Everything is cached or running: compare them",
            icon=":material/compare_arrows:",
        )


st.title("Design & launch")
st.caption(
    "Choose variants from the paper's figures, or load a row set of its tables; then launch. "
    "Runs already in the cache are never trained twice."
)
with page_guard("design"):
    body()
