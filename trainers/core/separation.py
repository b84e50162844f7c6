"""Does a difference between variants exceed the seed-to-seed spread? (issue #17)

The yardstick is a baseline trained with several seeds (Table 1's identity shortcut, twice): its
range (max - min over seeds) at the same point of training is how far two runs of the *same*
variant already differ. A variant's difference from the baseline's median counts as exceeding the
seed spread only when it is larger than that whole range. With two seeds the range is a rough
estimate of the noise (it is usually smaller than the range of five), so the rule is a floor, not
a significance test; every caption that uses it says n.

Compared quantities, at a point every run has reached:
- training loss: the mean of the logged training losses over the last `window` iterations (each
  logged point is itself the mean loss over its log interval), as the paper's Fig. 3 / 6 plot it;
- test error: at the last evaluation all runs share (the whole test set, no smoothing).

Pure and torch-free: the UI's caption, the CLI and explorer/reference/README.md use the same numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

Curve = Sequence[Mapping[str, Any]]  # a run's metrics and eval events


def _points(curve: Curve, kind: str, column: str) -> list[tuple[int, float]]:
    return [
        (int(p["iteration"]), float(p[column]))
        for p in curve
        if p.get("type") == kind and isinstance(p.get(column), (int, float)) and p.get("iteration") is not None
    ]


def train_loss_at(curve: Curve, at: int, window: int = 100) -> float | None:
    """Mean logged training loss over iterations (at - window, at]; None if none was logged there."""
    vals = [v for it, v in _points(curve, "metrics", "train_loss") if at - window < it <= at]
    return statistics.fmean(vals) if vals else None


def test_error_at(curve: Curve, at: int) -> float | None:
    for it, v in _points(curve, "eval", "test_error"):
        if it == at:
            return v
    return None


def common_iteration(curves: Sequence[Curve]) -> int:
    """The last iteration every curve has logged (0 if one has none)."""
    last = [max((it for it, _ in _points(c, "metrics", "train_loss")), default=0) for c in curves]
    return min(last, default=0)


def common_eval(curves: Sequence[Curve]) -> int | None:
    """The last iteration at which every curve has a test evaluation."""
    sets = [{it for it, _ in _points(c, "eval", "test_error")} for c in curves]
    shared = set.intersection(*sets) if sets else set()
    return max(shared) if shared else None


def compare(baseline: Sequence[Curve], variants: Mapping[str, Sequence[Curve]], *, window: int = 100) -> dict[str, Any]:
    """Each variant against the baseline's seeds, at the last point all runs share.

    Returns {"at", "eval_at", "window", "baseline": {n, train_loss (median, lo, hi), test_error
    (...)}, "rows": [{name, n, train_loss, test_error, loss_difference, error_difference,
    loss_exceeds, error_exceeds}]}; a difference is None where a value is missing, and
    `*_exceeds` is None when the baseline has fewer than two seeds (no spread to judge by)."""
    every = [*baseline, *(c for cs in variants.values() for c in cs)]
    at, eval_at = common_iteration(every), common_eval(every)

    def summary(curves: Sequence[Curve]) -> dict[str, Any]:
        losses = [v for v in (train_loss_at(c, at, window) for c in curves) if v is not None]
        errors = [v for v in (test_error_at(c, eval_at) for c in curves) if v is not None] if eval_at else []
        out: dict[str, Any] = {"n": len(curves)}
        for name, vals in (("train_loss", losses), ("test_error", errors)):
            out[name] = (
                {"median": statistics.median(vals), "lo": min(vals), "hi": max(vals), "values": vals} if vals else None
            )
        return out

    base = summary(baseline)
    rows = []
    for name, curves in variants.items():
        s = summary(curves)
        row: dict[str, Any] = {"name": name, "n": s["n"]}
        for col, short in (("train_loss", "loss"), ("test_error", "error")):
            b, v = base[col], s[col]
            row[col] = v["median"] if v else None
            diff = v["median"] - b["median"] if (v and b) else None
            row[f"{short}_difference"] = diff
            spread = (b["hi"] - b["lo"]) if b and len(b["values"]) > 1 else None
            row[f"{short}_exceeds"] = None if diff is None or spread is None else abs(diff) > spread
        rows.append(row)
    return {"at": at, "eval_at": eval_at, "window": window, "baseline": base, "rows": rows}


def verdict_text(result: Mapping[str, Any], baseline_name: str) -> str:
    """One sentence per quantity: which differences exceed the baseline's seed spread, which do not."""
    base = result["baseline"]
    n = base["n"]
    parts = []
    for col, short, unit, what in (
        (
            "train_loss",
            "loss",
            "",
            f"training loss (mean over iterations {max(0, result['at'] - result['window']):,}-{result['at']:,})",
        ),
        ("test_error", "error", " %", f"test error at iteration {result['eval_at'] or 0:,}"),
    ):
        b = base[col]
        if not b:
            continue
        spread = b["hi"] - b["lo"]
        over = [r["name"] for r in result["rows"] if r[f"{short}_exceeds"]]
        within = [r["name"] for r in result["rows"] if r[f"{short}_exceeds"] is False]
        fmt = "{:.3f}" if col == "train_loss" else "{:.2f}"
        text = (
            f"In {what}, the {n} {baseline_name} seeds span "
            + fmt.format(b["lo"])
            + "-"
            + fmt.format(b["hi"])
            + f"{unit} (spread "
            + fmt.format(spread)
            + f"{unit}); "
        )
        text += "beyond that spread: " + ", ".join(over) if over else "no variant differs by more than that"
        if within:
            text += "; within it: " + ", ".join(within)
        parts.append(text + ".")
    return " ".join(parts)
