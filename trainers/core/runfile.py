"""One run as a file carries it (a runs export, a reference pack): the bounds and the validation
that every reader applies before anything is stored or shown. Torch-free and store-free, so the
runs layer's `import` and the explorer's reference packs share it (docs/limits.md)."""

from __future__ import annotations

import math
import time
from typing import Any

from .config import MAX_ITERATIONS, ConfigError, RunConfig
from .results import FINAL, RESULT_STATUSES

# Bounds of an import (docs/limits.md): far above any real export, low enough that a
# hostile or broken file is refused quickly instead of filling memory or the store.
MAX_BYTES = 64 * 2**20  # an export of a thousand runs with their curves is ~30 MB
MAX_RUNS = 100_000
MAX_POINTS = 100_000  # per curve: 64k iterations logged at every one of them
MAX_TEXT = 10_000  # characters of any string (an error message, a label, a device name)
RUN_FIELDS = ("key", "label", "status", "config", "result", "error", "meta", "curve")
RESULT_NUMBERS = {  # field -> (low, high)
    "test_error": (0.0, 100.0),
    "test_loss": (0.0, 1e6),
    "train_loss": (0.0, 1e6),
    "iterations": (0, MAX_ITERATIONS),
    "epochs": (0.0, 1e9),
    "wall_time_s": (0.0, 1e9),
    "parameters": (0, 1e12),
}
RESULT_FIELDS = ("key", "status", "config", "provenance", *RESULT_NUMBERS)
POINT_RANGES = {
    "iteration": (0, MAX_ITERATIONS),
    "epoch": (0.0, 1e9),
    "train_loss": (0.0, 1e6),
    "train_error": (0.0, 100.0),
    "lr": (0.0, 1e6),
    "images_per_s": (0.0, 1e12),
    "elapsed_s": (0.0, 1e9),
    "eta_s": (0.0, 1e12),
    "test_error": (0.0, 100.0),
    "test_loss": (0.0, 1e6),
}
META_FIELDS = ("created_at", "finished_at", "attempt", "device", "device_name", "backend", "parameters")
POINT_FIELDS = {
    "metrics": ("iteration", "epoch", "train_loss", "train_error", "lr", "images_per_s", "elapsed_s", "eta_s"),
    "eval": ("iteration", "epoch", "test_error", "test_loss"),
}


class ImportFileError(ValueError):
    """A file that cannot be imported; the message says where and why. Nothing was changed."""


# --- validation --------------------------------------------------------------------------
def _is_num(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _check_number(x: Any, lo: float, hi: float, what: str) -> None:
    """`x` is null or a finite number in [lo, hi] (ImportFileError naming `what`, else)."""
    if x is None:
        return
    if not _is_num(x):
        raise ImportFileError(f"{what} must be numbers, got {str(x)[:40]!r}")
    if not math.isfinite(x) or not lo <= x <= hi:
        raise ImportFileError(f"{what} must be a finite number in [{lo:g}, {hi:g}], got {x!r:.40}")


def _check_text(x: Any, what: str, limit: int = MAX_TEXT) -> None:
    if x is not None and (not isinstance(x, str) or len(x) > limit):
        raise ImportFileError(f"{what} must be text of at most {limit:,} characters")


def _check_unknown(d: dict, allowed, what: str) -> None:
    unknown = set(d) - set(allowed)
    if unknown:
        names = ", ".join(sorted(str(k)[:40] for k in unknown)[:5])
        raise ImportFileError(f"{what}: unknown field(s) {names}")


def _check_provenance_value(v: Any, what: str) -> None:
    if isinstance(v, list):  # packed_with: the keys of a pack
        if len(v) > 1000 or not all(isinstance(x, str) and len(x) <= 100 for x in v):
            raise ImportFileError(f"{what} must be a short list of text")
    elif isinstance(v, str):
        _check_text(v, what, 1000)
    elif not (v is None or isinstance(v, bool) or _is_num(v)) or (isinstance(v, float) and not math.isfinite(v)):
        raise ImportFileError(f"{what} must be text, a number or true/false")


def validate_run(run: Any, where: str) -> tuple[dict, list[dict]]:
    """A record ready for the store and its curve, or ImportFileError saying what is wrong."""
    if not isinstance(run, dict):
        raise ImportFileError(f"{where}: a run must be an object")
    _check_unknown(run, RUN_FIELDS, where)
    _check_text(run.get("label"), f"{where}: label", 1000)
    if not isinstance(run.get("config"), dict):
        raise ImportFileError(f"{where}: missing config")
    try:
        cfg = RunConfig.from_dict(run["config"])
    except (ConfigError, TypeError) as e:
        raise ImportFileError(f"{where}: invalid config: {e}") from None
    if run.get("key") not in (None, cfg.key):
        raise ImportFileError(f"{where}: key {run['key']!r} does not match its config (key {cfg.key})")
    status = run.get("status")
    if status not in FINAL:
        raise ImportFileError(f"{where}: status {status!r}; only finished runs can be imported ({', '.join(FINAL)})")
    result = run.get("result")
    if status in RESULT_STATUSES:
        if not isinstance(result, dict) or result.get("status") != status:
            raise ImportFileError(f"{where}: a {status} run needs a result with status {status!r}")
        if "config" in result and result["config"] != cfg.to_dict():
            raise ImportFileError(f"{where}: the result was produced by another config")
    elif result is not None and not isinstance(result, dict):
        raise ImportFileError(f"{where}: result must be an object or null")
    if isinstance(result, dict):
        _check_unknown(result, RESULT_FIELDS, f"{where}: result")
        for f, (lo, hi) in RESULT_NUMBERS.items():
            _check_number(result.get(f), lo, hi, f"{where}: result {f}")
        if result.get("key") not in (None, cfg.key):
            raise ImportFileError(f"{where}: result key {str(result['key'])[:40]!r} is not the run's")
        prov = result.get("provenance")
        if prov is not None and not isinstance(prov, dict):
            raise ImportFileError(f"{where}: result provenance must be an object")
        for k, v in (prov or {}).items():
            _check_text(k, f"{where}: a provenance field name", 100)
            if isinstance(v, dict):  # recipe: the training choices the paper is silent on, one level
                if len(v) > 100:
                    raise ImportFileError(f"{where}: result provenance {k} has more than 100 fields")
                for k2, v2 in v.items():
                    _check_text(k2, f"{where}: a provenance {k} field name", 100)
                    _check_provenance_value(v2, f"{where}: result provenance {k}.{k2}")
            else:
                _check_provenance_value(v, f"{where}: result provenance {k}")
    error = run.get("error")
    if error is not None and not isinstance(error, str):
        raise ImportFileError(f"{where}: error must be text")
    _check_text(error, f"{where}: error")
    curve = run.get("curve", [])
    if not isinstance(curve, list):
        raise ImportFileError(f"{where}: curve must be a list")
    if len(curve) > MAX_POINTS:
        raise ImportFileError(f"{where}: curve has {len(curve):,} points, more than {MAX_POINTS:,}")
    for j, p in enumerate(curve):
        if not isinstance(p, dict) or p.get("type") not in POINT_FIELDS:
            raise ImportFileError(f"{where}, curve point {j}: type must be metrics or eval")
        _check_unknown(p, ("type", *POINT_FIELDS[p["type"]]), f"{where}, curve point {j}")
        it = p.get("iteration")
        if isinstance(it, bool) or not isinstance(it, int) or it < 0:
            raise ImportFileError(f"{where}, curve point {j}: iteration must be a whole number >= 0")
        bad = [f for f in POINT_FIELDS[p["type"]] if not _is_num(p.get(f))]
        if bad:
            raise ImportFileError(f"{where}, curve point {j}: {', '.join(bad)} must be numbers")
        for f in POINT_FIELDS[p["type"]]:
            _check_number(p.get(f), *POINT_RANGES[f], f"{where}, curve point {j}: {f}")
    meta = run.get("meta") or {}
    if not isinstance(meta, dict):
        raise ImportFileError(f"{where}: meta must be an object")
    _check_unknown(meta, META_FIELDS, f"{where}: meta")
    for f in META_FIELDS:
        v = meta.get(f)
        if isinstance(v, str):
            _check_text(v, f"{where}: meta {f}", 1000)
        elif not _is_num(v) or (isinstance(v, float) and not math.isfinite(v)):
            raise ImportFileError(f"{where}: meta {f} must be text or a finite number")
    curve = [{"type": p["type"], **{f: p.get(f) for f in POINT_FIELDS[p["type"]]}} for p in curve]
    t = time.time()
    test_error = result.get("test_error") if isinstance(result, dict) else None
    created = meta.get("created_at")
    finished = meta.get("finished_at")
    rec = {
        "key": cfg.key,
        "config": cfg.to_dict(),
        "label": cfg.label(),
        "status": status,
        "progress": 1.0 if status in ("done", "fail") else 0.0,
        "iteration": (result or {}).get("iterations", 0) if isinstance(result, dict) else 0,
        "total": cfg.iterations,
        "eta_s": None,
        "images_per_s": None,
        "device": meta.get("device") if isinstance(meta.get("device"), str) else None,
        "device_name": meta.get("device_name") if isinstance(meta.get("device_name"), str) else None,
        "attempt": 0,
        "restarts": 0,
        "created_at": created if _is_num(created) and created else t,
        "updated_at": t,
        "queued_at": None,
        "started_at": None,
        "finished_at": finished if _is_num(finished) else None,
        "heartbeat_at": None,
        "error": error,
        "last_failure": None,
        "result": result,
        "backend": "import",
        "slot": None,
        "pid": None,
        "host": None,
        "log": None,
        "cancel_requested": False,
        "cancel_requested_at": None,
        "test_error": test_error if _is_num(test_error) else None,
        "train_loss": None,
        "checkpoint_iteration": None,
        "imported_at": t,
    }
    return rec, curve
