"""Data & system: which datasets are here or downloadable (and fetching them, with progress), where
the cache lives and how big it is, the job backends and their state, the GPUs this machine sees."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from explorer import engine_api, runs_api
from explorer.app_settings import CACHE_ENV, cache_dir, jpeg_copy_spec
from explorer.figures import format_bytes
from explorer.guard import page_guard, show_error


@st.cache_data(ttl=30, show_spinner=False)
def folder_size(path: str) -> tuple[int, int]:
    """(bytes, files) under `path`; cached 30 s, a big cache takes a moment to walk."""
    total, files = 0, 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else "— (counted when decoded)"


def dataset_specs() -> list[str]:
    specs = ["cifar10", "cifar100"]
    if jpeg := jpeg_copy_spec():
        specs.append(jpeg)
    return specs + ["synthetic"]


def prepare(spec: str) -> None:
    bar = st.progress(0.0, text=f"preparing {spec}…")

    def report(message: str, fraction: float) -> None:
        bar.progress(min(1.0, max(0.0, float(fraction or 0.0))), text=message)

    try:
        data = engine_api.load_dataset(spec, progress=report)
    except Exception as e:  # noqa: BLE001 - DataError says what to do; others get advice
        bar.empty()
        show_error(e, f"prepare {spec}")
        return
    bar.progress(1.0, text=f"{data.label}: {len(data.train_y):,} training and {len(data.test_y):,} test images ready")


def datasets_section() -> None:
    st.subheader("Datasets")
    rows = []
    for spec in dataset_specs():
        try:
            info = engine_api.dataset_info(spec)
        except Exception as e:  # noqa: BLE001
            rows.append({"dataset": spec, "state": f"unavailable: {e}"})
            continue
        state = (
            "decoded, ready"
            if info.get("decoded")
            else "present"
            if info.get("present")
            else "downloadable (needs internet)"
            if info.get("downloadable")
            else "not found"
        )
        rows.append(
            {
                "dataset": info.get("label", spec),
                "spec": spec,
                "state": state,
                "train images": _count(info.get("num_train")),
                "test images": _count(info.get("num_test")),
                "size": format_bytes(info.get("size_bytes")),
                "path": info.get("path") or "",
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch")
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    specs = dataset_specs()
    names = {r["spec"]: r["dataset"] for r in rows if "spec" in r}
    spec = c1.selectbox(
        "Prepare a dataset now (download / extract / decode into the cache)",
        specs,
        key="system_prepare_spec",
        format_func=lambda s: names.get(s, s),
    )
    if c2.button("Prepare", key="system_prepare", icon=":material/download:"):
        prepare(spec)
    with st.expander("Check a local folder or tarball"):
        path = st.text_input(
            "Path (train/<class>/*.jpg and test/<class>/*.jpg, or a .tar.gz of them)", key="system_folder"
        )
        if path and st.button("Check and decode", key="system_folder_go"):
            prepare("folder:" + path.strip())
    st.caption(
        "No internet? CIFAR-10/100 downloads fail with a message; point runs at a local copy "
        "instead (Design → Dataset → Local folder / tarball)."
    )


def cache_section() -> None:
    st.subheader("Cache")
    path = cache_dir()
    exists = Path(path).is_dir()
    size, files = folder_size(path) if exists else (0, 0)
    c1, c2 = st.columns([3, 1])
    c1.markdown(
        f"`{path}`  \nSet `{CACHE_ENV}` to move it (e.g. `{CACHE_ENV}=/data/resnet-cache streamlit run app.py`)."
    )
    c2.metric("size", format_bytes(size), help=f"{files:,} files")
    if not exists:
        st.caption("It does not exist yet: the first run creates it.")


def backends_section() -> None:
    st.subheader("Job backends")
    try:
        alive = runs_api.supervisor_alive()
        s = runs_api.runs_settings()
        st.markdown(
            f"**local** · supervisor {'running' if alive else 'idle (starts with the next launch)'} · "
            f"GPUs `{s.gpus or 'none'}` · {s.jobs_per_gpu} job(s) per GPU · {s.cpu_jobs} CPU job(s) "
            f"at a time · log `{Path(cache_dir()) / 'logs' / 'supervisor.log'}`"
        )
    except Exception as e:  # noqa: BLE001
        show_error(e, "backends")
    try:
        import ray

        addr = runs_api.runs_settings().ray_address  # settings.json, then RAY_ADDRESS
        addr = f"`{addr}`" if addr else "not set: `auto` (a cluster started on this host with `ray start --head`)"
        st.markdown(f"**ray** {ray.__version__} installed · cluster address {addr}")
    except Exception:  # noqa: BLE001
        st.markdown("**ray** not installed (`pip install -r requirements-ray.txt` to use a cluster)")


def gpus_section() -> None:
    st.subheader("Devices")
    here = engine_api.devices()
    if not here["gpus"]:
        st.markdown(f"No CUDA GPU visible: runs use the CPU ({here['cpu_cores']} cores, torch {here['torch']}).")
        return
    rows = [{**g, "memory": format_bytes(g["memory"])} for g in here["gpus"]]
    st.dataframe(rows, hide_index=True, width="stretch")


st.title("Data & system")
for section in (datasets_section, cache_section, backends_section, gpus_section):
    with page_guard(section.__name__):
        section()
