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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainers.core.results import FINAL
from trainers.core.runfile import (
    MAX_BYTES,
    MAX_POINTS,
    MAX_RUNS,
    META_FIELDS,
    POINT_FIELDS,
    ImportFileError,
    validate_run,
)
from trainers.core.strict_json import dumps

from .store import Store

FORMAT = "resnet-v2-explorer/runs"
VERSION = 1
CSV_COLUMNS = [
    "key",
    "row",
    "status",
    "label",
    "iteration",
    "epoch",
    "train_loss",
    "train_error",
    "lr",
    "images_per_s",
    "elapsed_s",
    "eta_s",
    "test_error",
    "test_loss",
    "config",
    "result",
    "error",
    "meta",
]


# --- export --------------------------------------------------------------------------------------
def export_runs(store: Store, keys: list[str] | None = None) -> dict[str, Any]:
    """The export document of `keys` (default: every finished run)."""
    recs = [store.get(k) for k in keys] if keys is not None else store.list_runs(FINAL)
    runs = []
    for rec in recs:
        if rec is None or rec["status"] not in FINAL:
            continue
        runs.append(
            {
                "key": rec["key"],
                "label": rec["label"],
                "status": rec["status"],
                "config": rec["config"],
                "result": rec["result"],
                "error": rec["error"],
                "meta": {k: rec.get(k) for k in META_FIELDS},
                "curve": store.curve_of(rec),
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs,
    }


def _num(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return ""  # like null in JSON: a strict reader takes no NaN/Infinity
    return "" if x is None else (repr(x) if isinstance(x, float) else x)


def runs_csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    w.writeheader()
    for run in doc["runs"]:
        w.writerow(
            {
                "key": run["key"],
                "row": "run",
                "status": run["status"],
                "label": run["label"],
                "config": dumps(run["config"], sort_keys=True),
                "result": dumps(run["result"]),
                "error": run["error"] or "",
                "meta": dumps(run["meta"]),
            }
        )
        for p in run["curve"]:
            w.writerow({"key": run["key"], "row": p["type"], **{f: _num(p.get(f)) for f in POINT_FIELDS[p["type"]]}})
    return buf.getvalue()


def write_export(path: str | Path, store: Store, keys: list[str] | None = None, fmt: str | None = None) -> int:
    """Write an export file; the format follows `fmt` or the suffix (.csv, else JSON). Returns runs."""
    path = Path(path)
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "json")
    doc = export_runs(store, keys)
    text = runs_csv(doc) if fmt == "csv" else dumps(doc, indent=1)
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
            runs[key] = {
                "key": key,
                "status": line.get("status"),
                "label": line.get("label"),
                "config": _json_field(line["config"], "config", where),
                "result": _json_field(line.get("result") or "", "result", where),
                "error": line.get("error") or None,
                "meta": _json_field(line.get("meta") or "", "meta", where) or {},
                "curve": [],
            }
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
                skipped.append((rec["key"], f"already here ({existing['status'] if existing else '?'})"))
    return {"imported": imported, "skipped": skipped}
