"""No traceback ever reaches the browser: page bodies run inside `page_guard`, which turns any
error into a message that says what to do. Streamlit's own control flow (st.rerun, st.stop,
st.switch_page) derives from BaseException and passes through untouched."""

from __future__ import annotations

import logging
import traceback
from contextlib import contextmanager

import streamlit as st

from trainers.core.errors import ConfigError, DataError

from .app_settings import CACHE_ENV

log = logging.getLogger("explorer")


_MARKDOWN = "\\`*_{}[]<>()#+-.!|~$"


def md_escape(text: str) -> str:
    """Show a message literally: no italics from `*.jpg`, no LaTeX from a `$`, no links."""
    return "".join("\\" + ch if ch in _MARKDOWN else ch for ch in str(text))


def advice(err: BaseException) -> str:
    """A one-paragraph message for the user: what went wrong and what to do about it."""
    name = type(err).__name__
    raw = str(err) or name
    text = md_escape(raw)
    if isinstance(err, DataError):
        low = raw.lower()
        hint = ""
        if any(w in low for w in ("download", "internet", "network", "url", "connect", "resolve")):
            hint = (
                " Without internet, point the run at a local copy instead: choose "
                "**Local folder / tarball** as the dataset and give the path of a folder or "
                ".tar.gz with `train/<class>/*.jpg` and `test/<class>/*.jpg` (for example "
                "`../shared/data/cifar10-jpeg.tar.gz`), or use **synthetic** for a smoke test."
            )
        return f"The dataset could not be loaded: {text.rstrip('.')}.{hint}"
    if isinstance(err, ConfigError):
        return f"That configuration cannot describe a run: {text.rstrip('.')}. Change the field it names."
    if isinstance(err, ImportError) and ("trainers.runs" in raw or "presets" in raw):
        return (
            f"The runs layer is not available ({text}). The Learn page still works; "
            "designing, launching, watching and comparing runs need `trainers/runs` and `trainers/core/presets.py`."
        )
    if isinstance(err, PermissionError):
        return (
            f"No permission: {text}. Set {CACHE_ENV} to a folder you can write "
            "(e.g. `RESNET_EXPLORER_CACHE=~/resnet-cache streamlit run app.py`)."
        )
    if isinstance(err, OSError):
        return (
            f"A file or disk operation failed: {text}. Check that the cache folder exists, is "
            f"writable and has free space (set {CACHE_ENV} to move it)."
        )
    return (
        f"Something went wrong: {name}: {text}. The details are in the terminal that runs "
        "`streamlit run`; reload the page to try again."
    )


def show_error(err: BaseException, context: str = "") -> None:
    log.error("explorer error%s:\n%s", f" ({context})" if context else "", "".join(traceback.format_exception(err)))
    st.error(advice(err), icon=":material/error:")


@contextmanager
def page_guard(context: str = ""):
    try:
        yield
    except Exception as err:  # noqa: BLE001 - the point: nothing escapes to the browser
        show_error(err, context)
