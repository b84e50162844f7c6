"""Result rules, once: run statuses, the paper's "fail", seed medians with min–max, ours vs the paper.

The CLI's `results` (trainers/runs/sweeps.py), the UI's Compare table (explorer/figures.py) and the
results CSV all build their rows with `result_rows`, so they show the same numbers.

- A group is the runs of one config without its seed; its value is the median of its finished
  runs (the paper: median of 5), with min and max. A diverged run counts as +inf (it never
  learned), so the median of two runs where one diverged is inf: shown as "diverged".
- The paper's "fail" (test error above 20 %) is a statement about its full schedule (64k
  iterations). Only a run trained on that schedule can "fail"; a 300-iteration run at 54 % is
  shown as 54.00 beside its schedule. It is decided once, where a run is shown: the engine stores
  "done", "diverged" or "cancelled" (`ENGINE_STATUSES`), and `shown_status` reads a finished run
  through `final_status`. Records stored by older engines said "fail" (for short runs too): they
  are read through the same rule.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import RunConfig
from .presets import PRESETS, paper_row, schedule_name

STATUSES = ("queued", "running", "done", "fail", "diverged", "error", "cancelled")
ACTIVE = ("queued", "running")
FINAL = ("done", "fail", "diverged", "error", "cancelled")
ENGINE_STATUSES = ("done", "diverged", "cancelled")  # what train() returns and stores
RESULT_STATUSES = ENGINE_STATUSES + ("fail",)  # what a stored result may hold ("fail": older engines)
FINISHED = ("done", "fail", "diverged")  # trained to the end (or diverged): a number to report

FAIL_THRESHOLD = 20.0  # % test error: the paper writes "fail" above this (Table 1), after 64k iterations
PAPER_SCHEDULE = "paper"


# --- one run -------------------------------------------------------------------------------------


def is_paper_schedule(cfg: RunConfig) -> bool:
    """Trained for as long and measured as densely as the paper (where its "fail" applies)."""
    return schedule_name(cfg) == PAPER_SCHEDULE


def final_status(cfg: RunConfig, test_error: float | None) -> str:
    """The status to show for a run that trained to its last iteration: "fail" where the paper
    would write it (its full schedule and a test error above 20 %, or none), else "done"."""
    if is_paper_schedule(cfg) and (test_error is None or not test_error <= FAIL_THRESHOLD):
        return "fail"
    return "done"


def _config(rec: Mapping) -> RunConfig | None:
    try:
        return RunConfig.from_dict(rec["config"])
    except Exception:  # noqa: BLE001 - an old record whose config no longer validates
        return None


def _final_error(rec: Mapping) -> float | None:
    inner = rec.get("result")
    result: Mapping = inner if isinstance(inner, Mapping) else rec
    te = result.get("test_error")
    return float(te) if isinstance(te, (int, float)) and not isinstance(te, bool) else None


def shown_status(rec: Mapping) -> str:
    """The status to show for a run record (or a result: both carry status, config and test
    error). A finished run ("done", or "fail" as older engines stored it) reads through
    `final_status`: "fail" only on the paper's schedule above 20 %; every other status as stored."""
    status = rec.get("status", "")
    if status not in ("done", "fail"):
        return status
    te = _final_error(rec)
    if te is not None and te <= FAIL_THRESHOLD:  # the common case: no config to parse
        return "done"
    cfg = _config(rec)
    return status if cfg is None else final_status(cfg, te)


def run_error(rec: Mapping) -> float | None:
    """A run's test error for its group's median: the final test error of a finished run, +inf
    for a diverged one (or a finished one without a number), None for a run that has none yet."""
    status = rec.get("status")
    if status == "diverged":
        return math.inf
    if status in ("done", "fail") and rec.get("result"):
        te = rec["result"].get("test_error")
        return float(te) if isinstance(te, (int, float)) and math.isfinite(te) else math.inf
    return None


# --- a group of seeds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedStats:
    """Median, min and max over a group's finished runs (None where no run has finished)."""

    n: int
    median: float | None
    min: float | None
    max: float | None
    diverged: int


def seed_stats(errors: Iterable[float | None]) -> SeedStats:
    values = sorted(e for e in errors if e is not None)
    if not values:
        return SeedStats(0, None, None, None, 0)
    return SeedStats(
        len(values), statistics.median(values), values[0], values[-1], sum(1 for v in values if v == math.inf)
    )


def group_key(config: Mapping) -> str:
    """Runs that differ only in their seed form one group (12 hex chars; the UI puts it in URLs)."""
    d = {k: v for k, v in config.items() if k != "seed"}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


# --- words and numbers ---------------------------------------------------------------------------


def number_text(x: float | None) -> str:
    """A test error as the paper prints it: 6.37; "diverged" for +inf; "–" for none."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "diverged" if x == math.inf else f"{x:.2f}"


def error_text(x: float | None, paper_schedule: bool) -> str:
    """Our median in words: the number, or "fail (35.0)" only for a run on the paper's schedule."""
    if x is not None and paper_schedule and FAIL_THRESHOLD < x < math.inf:
        return f"fail ({x:.1f})"
    return number_text(x)


def group_label(record: Mapping) -> str:
    """A group's name: the run's label, plus its dataset and iterations where not the paper's."""
    cfg = record.get("config") or {}
    label = record.get("label") or record.get("key", "?")
    extras = []
    ds = str(cfg.get("dataset", ""))
    if ds and ds != "cifar10":
        extras.append(dataset_short(ds))
    if cfg.get("iterations") and int(cfg["iterations"]) != 64_000:
        extras.append(f"{int(cfg['iterations']):,} it")
    return f"{label} [{', '.join(extras)}]" if extras else label


def dataset_short(spec: str) -> str:
    if spec.startswith("folder:"):
        tail = spec[7:].rstrip("/").split("/")[-1]
        return "CIFAR-10 (JPEG copy)" if "cifar10-jpeg" in tail else f"folder {tail}"
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "synthetic": "synthetic"}.get(spec, spec)


def compare(median: float | None, ref: Any, paper_schedule: bool) -> tuple[float | None, str]:
    """Ours vs the paper's row: (median − reported, or None) and the same in words ("+0.39",
    "ours fails", "both fail", "paper fails", ...). `ref` has `.reported` and `.fails`."""
    if ref is None or median is None:
        return None, ""
    ours_fail = median == math.inf or (paper_schedule and median > FAIL_THRESHOLD)
    if getattr(ref, "fails", False):
        if not paper_schedule:
            return None, "paper fails (64k its)" if median < math.inf else "ours diverged; paper fails"
        return None, "both fail" if ours_fail else "paper fails"
    reported = getattr(ref, "reported", None)
    if reported is None:
        return None, ""
    if ours_fail:
        return None, "ours diverged" if median == math.inf else "ours fails"
    d = median - reported
    return d, f"{d:+.2f}"


# --- the table -----------------------------------------------------------------------------------

PaperLookup = Callable[[Mapping], Any]  # config dict -> the paper's row (.label, .reported, .fails) or None

COLUMNS = [
    "group",
    "label",
    "table",
    "run",
    "schedule",
    "dataset",
    "iterations",
    "n",
    "runs",
    "median",
    "min",
    "max",
    "ours",
    "paper",
    "paper_error",
    "difference",
    "versus",
    "comparable",
    "note",
]


def _paper_lookup(preset: str | None) -> PaperLookup:
    rows_first = PRESETS[preset].rows if preset in PRESETS else None

    def lookup(config: Mapping):
        try:
            cfg = RunConfig.from_dict(dict(config))
        except Exception:  # noqa: BLE001 - an old record whose config no longer validates
            return None
        return (rows_first and paper_row(cfg, rows_first)) or paper_row(cfg)

    return lookup


def result_rows(
    records: Iterable[Mapping], paper_row: PaperLookup | None = None, preset: str | None = None
) -> list[dict[str, Any]]:
    """One row per config without its seed, in first-seen order:

    group (key), label (the paper's row or the config), table, run (the runs' label with their
    dataset and iterations),
    schedule, dataset (short), iterations, n (finished runs), runs (all), median/min/max
    (% test error; inf = diverged; None = nothing finished), ours (the median in words), paper
    (its number, "fail" or None), paper_error (number or None), difference (ours − paper, or
    None), versus (that in words), comparable (False: a proxy dataset), note, plus statuses,
    keys and seeds. `paper_row(config)` finds the paper's row (default: every table, `preset`'s
    rows first, so Table 2's "original" rather than Table 1's, same number)."""
    lookup = paper_row or _paper_lookup(preset)
    groups: dict[str, list[Mapping]] = {}
    for rec in records:
        if rec.get("config"):
            groups.setdefault(group_key(rec["config"]), []).append(rec)
    rows = []
    for gk, recs in groups.items():
        config = dict(recs[0]["config"])
        cfg = _config(recs[0])
        paper_schedule = cfg is not None and is_paper_schedule(cfg)
        stats = seed_stats(run_error(r) for r in recs)
        ref = lookup(config)
        paper_fails = bool(getattr(ref, "fails", False))
        reported = getattr(ref, "reported", None)
        difference, versus = compare(stats.median, ref, paper_schedule)
        iterations = int(config.get("iterations") or 0)
        ds = str(config.get("dataset", ""))
        notes = []
        if 0 < stats.diverged < stats.n:
            notes.append(f"{stats.diverged} of {stats.n} diverged")
        if ref is not None:
            if paper_fails:
                notes.append(f"paper: fail (> {FAIL_THRESHOLD:g}% after 64k iterations)")
            if not paper_schedule:
                notes.append(f"{iterations:,} iterations; paper: 64k")
            if ds.startswith("folder:"):
                notes.append(f"{dataset_short(ds)}: not the paper's data")
            elif ds == "synthetic":
                notes.append("synthetic data: not comparable")
        statuses: dict[str, int] = {}
        for r in recs:
            s = shown_status(r)
            statuses[s] = statuses.get(s, 0) + 1
        label = cfg.label() if cfg is not None else str(recs[0].get("label") or gk)
        rows.append(
            {
                "group": gk,
                "label": getattr(ref, "label", None) or label,
                "table": getattr(ref, "table", "") or "",
                "run": group_label(recs[0]),
                "schedule": schedule_name(cfg) if cfg is not None else f"{iterations:,} its",
                "dataset": dataset_short(ds),
                "iterations": iterations,
                "n": stats.n,
                "runs": len(recs),
                "median": stats.median,
                "min": stats.min,
                "max": stats.max,
                "ours": error_text(stats.median, paper_schedule),
                "paper": "fail" if paper_fails else reported,
                "paper_error": reported,
                "difference": difference,
                "versus": versus,
                "comparable": bool(getattr(ref, "comparable", True)),
                "note": "; ".join(notes),
                "statuses": statuses,
                "keys": [r["key"] for r in recs],
                "seeds": sorted(r["config"].get("seed", 0) for r in recs),
            }
        )
    return rows


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The table as CSV (the same columns the UI shows; numbers unrounded). Non-finite numbers are
    empty cells, as in every export (docs/limits.md): the "ours" column says "diverged"."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if _missing(r.get(k)) else r.get(k)) for k in COLUMNS})
    return buf.getvalue()
