"""Widgets of the Design page. Each function draws its widgets and returns the user's choices."""

from __future__ import annotations

import streamlit as st

from explorer.app_settings import jpeg_copy_spec
from explorer.engine_api import dataset_info
from explorer.plan import depth_choices, parse_values
from trainers.core.config import PARAM_BOUNDS, ConfigError
from trainers.core.registry import BLOCKS, ORDERINGS, PARAMS, SHORTCUTS


def _dataset_present(spec: str) -> bool:
    try:
        return bool(dataset_info(spec).get("present"))
    except Exception:  # noqa: BLE001 - unknown means "not known to be present"
        return False


def dataset_picker(per_row: bool) -> tuple[str | None, bool]:
    """(the dataset spec for every run, or None = each paper row's own dataset; False when the
    choice cannot be launched yet, e.g. an empty folder path)."""
    jpeg = jpeg_copy_spec()
    options = (
        (["paper"] if per_row else []) + ["cifar10", "cifar100"] + (["jpeg"] if jpeg else []) + ["folder", "synthetic"]
    )
    labels = {
        "paper": "As in the paper (per row)",
        "cifar10": "CIFAR-10 (download)",
        "cifar100": "CIFAR-100 (download)",
        "jpeg": "CIFAR-10 (JPEG copy, offline)",
        "folder": "Local folder / tarball…",
        "synthetic": "Synthetic (smoke test)",
    }
    default = "paper" if per_row else "cifar10"
    if jpeg and not _dataset_present("cifar10"):
        default = "jpeg"  # official CIFAR-10 not downloaded yet: this machine may be offline
    choice = st.selectbox(
        "Dataset",
        options,
        index=options.index(default),
        format_func=lambda k: labels[k],
        key="design_dataset",
        help="CIFAR-10/100 are downloaded by the first run that needs them "
        "(needs internet). Offline, use the JPEG copy or a local folder.",
    )
    if choice == "jpeg":
        st.caption(
            "Real CIFAR-10 images, JPEG round-tripped: errors measured on it are close to, "
            "but not directly, the paper's numbers."
        )
        return jpeg, True
    if choice == "folder":
        # backticks: `*.jpg` in plain markdown would turn the rest of the label italic
        path = st.text_input(
            "Folder or .tar.gz with `train/<class>/*.jpg` and `test/<class>/*.jpg`",
            value="../shared/data/cifar10-jpeg.tar.gz",
            key="design_folder",
            help="Relative paths start at the repository root. PNG images work too.",
        )
        if not path.strip():
            st.warning("Give the path of a folder or .tar.gz to launch on a local dataset.")
            return None, False
        return "folder:" + path.strip(), True
    if choice == "synthetic":
        st.caption("Small learnable synthetic images: for checking that everything runs, not for results.")
    if choice == "cifar10" and default == "jpeg":
        st.caption("CIFAR-10 is not in the cache yet; the first run downloads it (needs internet).")
    return (None if choice == "paper" else choice), True


def schedule_picker(schedules: dict, notes: dict) -> tuple[str, dict]:
    names = list(schedules)
    default = "quick" if "quick" in names else names[0]
    name = st.radio(
        "Schedule",
        names,
        index=names.index(default),
        horizontal=True,
        key="design_schedule",
        help="How long each run trains. The method (lr, milestones as fractions) stays the paper's.",
    )
    if notes.get(name):
        st.caption(notes[name])
    return name, dict(schedules[name])


def seeds_picker() -> int:
    return int(
        st.number_input(
            "Seeds per configuration", 1, 10, 1, key="design_seeds", help="The paper reports the median of 5 runs."
        )
    )


def backend_picker() -> str:
    try:
        import ray  # noqa: F401

        options = ["local", "ray"]
    except Exception:  # noqa: BLE001
        options = ["local"]
    return st.radio(
        "Backend",
        options,
        horizontal=True,
        key="design_backend",
        help="local: processes on this machine (GPUs if any, else the CPU). "
        "ray: a Ray cluster (RAY_ADDRESS), see the Data & system page.",
    )


def network_picker() -> dict:
    """Orderings × shortcut types (with each type's parameter values), unit type and depth."""
    c1, c2 = st.columns(2)
    orderings = c1.multiselect(
        "Orderings (Fig. 4)",
        list(ORDERINGS),
        default=["original", "full_preact"],
        format_func=lambda o: f"{ORDERINGS[o].title} ({ORDERINGS[o].figure})",
        key="design_orderings",
    )
    shortcuts = c2.multiselect(
        "Shortcut types (Fig. 2)",
        list(SHORTCUTS),
        default=["identity"],
        format_func=lambda s: f"{SHORTCUTS[s].title} ({SHORTCUTS[s].figure})",
        key="design_shortcuts",
    )
    params: dict[str, dict] = {}
    errors = []
    with_params = [s for s in shortcuts if SHORTCUTS[s].params]
    if with_params:
        cols = st.columns(len(with_params))
        for col, s in zip(cols, with_params):
            with col.container(border=True):
                st.markdown(f"**{SHORTCUTS[s].title}**")
                p = {}
                for field in SHORTCUTS[s].params:
                    key = f"design_{s}_{field}"
                    param = PARAMS[field]
                    if param.kind == "numbers":
                        bounds = PARAM_BOUNDS.get(field)
                        text = st.text_input(
                            f"{param.label} (comma-separated values)",
                            param.default,
                            key=key,
                            help=f"each between {bounds[0]:g} and {bounds[1]:g}" if bounds else None,
                        )
                        try:
                            p[field] = parse_values(text, param.label, bounds)
                        except ConfigError as e:
                            errors.append(str(e))
                    elif param.kind == "choice":
                        p[field] = [
                            st.selectbox(
                                param.label,
                                list(param.choices),
                                key=key,
                                help=param.help or None,
                                format_func=lambda v, labels=param.choice_labels: labels.get(v, str(v)),
                            )
                        ]
                    else:  # flags: dropout_rescale
                        p[field] = [st.checkbox(param.label, key=key, help=param.help or None)]
                params[s] = p
    c3, c4 = st.columns(2)
    block = c3.selectbox("Unit type", list(BLOCKS), format_func=lambda b: BLOCKS[b].title, key="design_block")
    depths = depth_choices(block)
    default_depth = 20 if 20 in depths else depths[1]
    depth = c4.selectbox(
        "Depth",
        depths,
        index=depths.index(default_depth),
        key=f"design_depth_{block}",
        format_func=lambda d: f"ResNet-{d}",
        help=BLOCKS[block].note,
    )
    for message in errors:
        st.error(message)
    return {
        "orderings": orderings,
        "shortcuts": shortcuts,
        "params": params,
        "block": block,
        "depth": depth,
        "ok": not errors,
    }
