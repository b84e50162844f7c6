"""Export and import runs (config, result, curve) as JSON or CSV. Never pickle.

An import is validated as a whole before anything is written: every config through
RunConfig.from_dict, every key against its config, results and curve points by type. A bad file
gets one clear message and changes nothing; a good one is written in one transaction. Runs whose
key is already in the store are skipped (the local record wins), and only finished runs travel.

CSV layout (one table, pandas-friendly): one `row=run` line per run carrying the config, result
and metadata as JSON, then one line per curve point (`row=metrics` or `row=eval`) with its numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainers.core.config import MAX_ITERATIONS, ConfigError, RunConfig
from trainers.core.strict_json import dumps

from .store import FINAL, RESULT_STATUSES, Store, now

FORMAT = "resnet-v2-explorer/runs"
VERSION = 1
# Bounds of an import (docs/limits.md): far above any real export, low enough that a
# hostile or broken file is refused quickly instead of filling memory or the store.
MAX_BYTES = 64 * 2**20  # an export of a thousand runs with their curves is ~30 MB
MAX_RUNS = 100_000
MAX_POINTS = 100_000  # per curve: 64k iterations logged at every one of them
MAX_TEXT = 10_000  # characters of any string (an error message, a label, a device name)
RUN_FIELDS = ("key", "label", "status", "config", "result", "error", "meta", "curve")
RESULT_NUMBERS = {  # field -> (low, high)
    "test_error": (0.0, 100.0), "test_loss": (0.0, 1e6), "train_loss": (0.0, 1e6),
    "iterations": (0, MAX_ITERATIONS), "epochs": (0.0, 1e9), "wall_time_s": (0.0, 1e9),
    "parameters": (0, 1e12),
}
RESULT_FIELDS = ("key", "status", "config", "provenance", *RESULT_NUMBERS)
POINT_RANGES = {
    "iteration": (0, MAX_ITERATIONS), "epoch": (0.0, 1e9), "train_loss": (0.0, 1e6),
    "train_error": (0.0, 100.0), "lr": (0.0, 1e6), "images_per_s": (0.0, 1e12), "elapsed_s": (0.0, 1e9),
    "eta_s": (0.0, 1e12), "test_error": (0.0, 100.0), "test_loss": (0.0, 1e6),
}
META_FIELDS = ("created_at", "finished_at", "attempt", "device", "device_name", "backend", "parameters")
POINT_FIELDS = {
    "metrics": ("iteration", "epoch", "train_loss", "train_error", "lr", "images_per_s", "elapsed_s", "eta_s"),
    "eval": ("iteration", "epoch", "test_error", "test_loss"),
}
CSV_COLUMNS = ["key", "row", "status", "label", "iteration", "epoch", "train_loss", "train_error", "lr",
               "images_per_s", "elapsed_s", "eta_s", "test_error", "test_loss", "config", "result",
               "error", "meta"]


class ImportFileError(ValueError):
    """A file that cannot be imported; the message says where and why. Nothing was changed."""


# --- export --------------------------------------------------------------------------------------
def export_runs(store: Store, keys: list[str] | None = None) -> dict[str, Any]:
    """The export document of `keys` (default: every finished run)."""
    recs = [store.get(k) for k in keys] if keys is not None else store.list_runs(FINAL)
    runs = []
    for rec in recs:
        if rec is None or rec["status"] not in FINAL:
            continue
        runs.append({
            "key": rec["key"], "label": rec["label"], "status": rec["status"], "config": rec["config"],
            "result": rec["result"], "error": rec["error"],
            "meta": {k: rec.get(k) for k in META_FIELDS},
            "curve": store.curve_of(rec),
        })
    return {"format": FORMAT, "version": VERSION,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": runs}


def _num(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return ""  # like null in JSON: a strict reader takes no NaN/Infinity
    return "" if x is None else (repr(x) if isinstance(x, float) else x)


def to_csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    w.writeheader()
    for run in doc["runs"]:
        w.writerow({"key": run["key"], "row": "run", "status": run["status"], "label": run["label"],
                    "config": dumps(run["config"], sort_keys=True),
                    "result": dumps(run["result"]), "error": run["error"] or "",
                    "meta": dumps(run["meta"])})
        for p in run["curve"]:
            w.writerow({"key": run["key"], "row": p["type"],
                        **{f: _num(p.get(f)) for f in POINT_FIELDS[p["type"]]}})
    return buf.getvalue()


def write_export(path: str | Path, store: Store, keys: list[str] | None = None, fmt: str | None = None) -> int:
    """Write an export file; the format follows `fmt` or the suffix (.csv, else JSON). Returns runs."""
    path = Path(path)
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "json")
    doc = export_runs(store, keys)
    text = to_csv(doc) if fmt == "csv" else dumps(doc, indent=1)
    path.write_text(text)
    return len(doc["runs"])


# --- import: parsing -----------------------------------------------------------------------------
def _loads(text: str, what: str) -> Any:
    """json.loads that refuses NaN/Infinity tokens and deep nesting (a clear message, not a
    RecursionError); every value is then checked field by field, so no deep structure is stored."""
    def no_constant(token: str) -> Any:
        raise ImportFileError(f"{what}: {token} is not a number JSON allows (write null)")

    try:
        return json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise ImportFileError(f"{what} is nested too deeply: not a runs export") from None


def _json_field(text: str, what: str, where: str) -> Any:
    try:
        return _loads(text, f"{where}: {what}") if text else None
    except json.JSONDecodeError as e:
        raise ImportFileError(f"{where}: {what} is not valid JSON ({e})") from None


def _csv_number(text: str, where: str) -> float | None:
    if text == "":
        return None
    try:
        x = float(text)
    except ValueError:
        raise ImportFileError(f"{where}: {text[:40]!r} is not a number") from None
    if not math.isfinite(x):
        raise ImportFileError(f"{where}: {text[:40]!r} is not a finite number (leave it empty)")
    return x


def parse_csv(text: str) -> dict[str, Any]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("key", "row", "config") if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportFileError(f"not a runs CSV export: missing column(s) {', '.join(missing)}")
    runs: dict[str, dict[str, Any]] = {}
    csv.field_size_limit(MAX_BYTES)
    for i, line in enumerate(reader, start=2):
        where = f"line {i}"
        kind, key = line.get("row"), line.get("key") or ""
        if kind == "run":
            if key in runs:
                raise ImportFileError(f"{where}: run {key} appears twice")
            runs[key] = {"key": key, "status": line.get("status"), "label": line.get("label"),
                         "config": _json_field(line["config"], "config", where),
                         "result": _json_field(line.get("result") or "", "result", where),
                         "error": line.get("error") or None,
                         "meta": _json_field(line.get("meta") or "", "meta", where) or {}, "curve": []}
        elif kind in POINT_FIELDS:
            if key not in runs:
                raise ImportFileError(f"{where}: a curve point of {key!r} before its run line")
            point: dict[str, Any] = {"type": kind}
            for f in POINT_FIELDS[kind]:
                v = _csv_number(line.get(f) or "", f"{where}, {f}")
                point[f] = int(v) if f == "iteration" and v is not None and v.is_integer() else v
            runs[key]["curve"].append(point)
            if len(runs[key]["curve"]) > MAX_POINTS:
                raise ImportFileError(f"{where}: run {key} has more than {MAX_POINTS:,} curve points")
        else:
            raise ImportFileError(f"{where}: row must be run, metrics or eval, got {kind!r}")
    return {"format": FORMAT, "version": VERSION, "runs": list(runs.values())}


def parse_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ImportFileError(f"{path} is larger than {MAX_BYTES // 2**20} MB: not a runs export")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ImportFileError(f"cannot read {path}: {e}") from None
    if path.suffix.lower() == ".csv":
        return parse_csv(text)
    try:
        doc = _loads(text, str(path))
    except json.JSONDecodeError as e:
        raise ImportFileError(f"{path} is not valid JSON ({e}); expected a runs export (.json or .csv)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ImportFileError(f"{path} is not a runs export (expected \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise ImportFileError(f"{path}: export version {doc.get('version')!r} is not {VERSION}")
    if not isinstance(doc.get("runs"), list):
        raise ImportFileError(f"{path}: \"runs\" must be a list")
    if len(doc["runs"]) > MAX_RUNS:
        raise ImportFileError(f"{path}: more than {MAX_RUNS:,} runs")
    unknown = set(doc) - {"format", "version", "exported_at", "runs"}
    if unknown:
        raise ImportFileError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    return doc


# --- import: validation --------------------------------------------------------------------------
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
            if isinstance(v, list):  # packed_with: the keys of a pack
                if len(v) > 1000 or not all(isinstance(x, str) and len(x) <= 100 for x in v):
                    raise ImportFileError(f"{where}: result provenance {k} must be a short list of text")
            elif isinstance(v, str):
                _check_text(v, f"{where}: result provenance {k}", 1000)
            elif not (v is None or isinstance(v, bool) or _is_num(v)) or (
                    isinstance(v, float) and not math.isfinite(v)):
                raise ImportFileError(f"{where}: result provenance {k} must be text, a number or true/false")
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
    t = now()
    test_error = result.get("test_error") if isinstance(result, dict) else None
    created = meta.get("created_at")
    finished = meta.get("finished_at")
    rec = {
        "key": cfg.key, "config": cfg.to_dict(), "label": cfg.label(), "status": status,
        "progress": 1.0 if status in ("done", "fail") else 0.0,
        "iteration": (result or {}).get("iterations", 0) if isinstance(result, dict) else 0,
        "total": cfg.iterations, "eta_s": None, "images_per_s": None,
        "device": meta.get("device") if isinstance(meta.get("device"), str) else None,
        "device_name": meta.get("device_name") if isinstance(meta.get("device_name"), str) else None,
        "attempt": 0, "restarts": 0, "created_at": created if _is_num(created) and created else t,
        "updated_at": t, "queued_at": None, "started_at": None,
        "finished_at": finished if _is_num(finished) else None,
        "heartbeat_at": None, "error": error, "last_failure": None, "result": result,
        "backend": "import", "slot": None, "pid": None, "host": None, "log": None,
        "cancel_requested": False, "cancel_requested_at": None,
        "test_error": test_error if _is_num(test_error) else None, "train_loss": None,
        "checkpoint_iteration": None, "imported_at": t,
    }
    return rec, curve


def import_file(path: str | Path, cache_dir: str | Path = "cache") -> dict[str, Any]:
    """Validate the whole file, then store its runs in one transaction. Returns
    {"imported": [keys], "skipped": [(key, reason)]}; raises ImportFileError (nothing changed)."""
    doc = parse_file(path)
    valid, seen = [], set()
    for i, run in enumerate(doc["runs"]):
        rec, curve = validate_run(run, f"run {i + 1}" + (f" ({run.get('key')})" if isinstance(run, dict) else ""))
        if rec["key"] in seen:
            raise ImportFileError(f"run {i + 1}: run {rec['key']} appears twice in the file")
        seen.add(rec["key"])
        valid.append((rec, curve))
    imported, skipped = [], []
    with Store(cache_dir) as store, store.transaction():
        for rec, curve in valid:
            if store.put_imported(rec, curve):
                imported.append(rec["key"])
            else:
                existing = store.get(rec["key"])
                skipped.append((rec["key"], f"already here ({existing['status']})"))
    return {"imported": imported, "skipped": skipped}
