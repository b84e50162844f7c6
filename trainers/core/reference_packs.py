"""Reference packs: finished runs made by this engine, shipped with the explorer (issue #12).

A pack is one JSON document, read-only, never unpickled:

    {"format": "resnet-v2-explorer/reference", "version": 1, "created_at": ISO,
     "runs": [{"key", "label", "status", "config", "result", "error", "meta", "curve",
               "schedule", "provenance"}, ...]}

Each run is a runs-export run (trainers/runs/export.py: the same config, key, result and curve
checks apply through its `validate_run`) plus `schedule` (a SCHEDULES name, or the run's own
"N its" description) and `provenance`: where and how it was trained (device, torch/CUDA, commit,
dataset label, precision/TF32, wall time, images/s). Nothing in a pack is edited by hand: the
generator (`python -m trainers reference`) writes it from the engine's own result files.

Reference runs are never user runs: the UI reads them from the pack, not from the store, draws
them under their own label ("reference: ...") and colour, and a user's run with the same key
stays the user's. Packs from several sessions merge: one entry per (key, device, commit, finish
time), the best-described copy of a run kept; the same config trained twice is listed twice.

Torch-free and diskcache-free to import; `validate_pack` imports the runs layer's checks lazily.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import RunConfig
from .presets import PRESETS, SCHEDULES, PaperRow, paper_row, schedule_name

FORMAT = "resnet-v2-explorer/reference"
VERSION = 1
MAX_BYTES = 8 * 2**20  # a pack ships in the repository: a few MB at most
MAX_RUNS = 500
MAX_CURVE_POINTS = 5_000  # per run: ~200 metrics + ~32 evals by default, paper runs at 2k evals
MAX_TEXT = 500  # characters of any provenance string
RUN_FIELDS = frozenset(
    {"key", "label", "status", "config", "result", "error", "meta", "curve", "schedule", "provenance"}
)
TOP_FIELDS = frozenset({"format", "version", "created_at", "note", "runs"})
# provenance field -> allowed JSON types (None = may be null)
PROVENANCE_FIELDS: dict[str, tuple[type, ...]] = {
    "device": (str,),
    "device_name": (str,),
    "torch": (str,),
    "cuda": (str, type(None)),
    "cudnn": (int, type(None)),
    "python": (str,),
    "code_version": (str,),
    "dataset": (str,),
    "precision": (str,),
    "tf32": (bool, type(None)),
    "precision_note": (str,),
    "channels_last": (bool,),
    "step_mode": (str,),
    "hostname": (str,),
    "started_at": (str,),
    "finished_at": (str,),
    "resumed": (bool,),
    "wall_time_s": (int, float),
    "images_per_s": (int, float, type(None)),
    "threads": (int, type(None)),
    "generator": (str,),
    "recipe": (dict,),  # the choices the paper is silent on (trainers/engine/recipe.py)
    "segments": (list,),  # a run grown across sessions: one entry per stretch of training
}
REQUIRED_PROVENANCE = (
    "device",
    "device_name",
    "torch",
    "code_version",
    "dataset",
    "precision",
    "wall_time_s",
    "finished_at",
)

# The shipped pack (explorer/reference/), found relative to the repository.
PACK_DIR = Path(__file__).resolve().parents[2] / "explorer" / "reference"


class PackError(ValueError):
    """A pack that cannot be used; the message names the field and why. Nothing was loaded."""


# --- which runs are worth shipping, most valuable first -----------------------------------------
def _row(table: str, label: str) -> PaperRow:
    for row in PRESETS[{"Table 1": "table1", "Table 2": "table2"}[table]].rows:
        if row.label == label:
            return row
    raise KeyError(f"{table} has no row {label!r}")


# The teaching order: the paper's headline (original vs full pre-activation, Table 2/Fig. 4), then
# Table 1's shortcuts from the most to the least instructive, then the remaining orderings.
TEACHING_ROWS: tuple[tuple[str, str], ...] = (
    ("Table 2", "original, ResNet-110"),
    ("Table 2", "full pre-activation, ResNet-110"),
    ("Table 1", "1x1 conv shortcut"),
    ("Table 1", "constant scaling 0.5 / 1"),
    ("Table 1", "exclusive gating, b_g = -6"),
    ("Table 1", "shortcut-only gating, b_g = -6"),
    ("Table 1", "dropout shortcut 0.5"),
    ("Table 1", "constant scaling 0.5 / 0.5"),
    ("Table 2", "BN after addition, ResNet-110"),
    ("Table 2", "ReLU before addition, ResNet-110"),
    ("Table 2", "ReLU-only pre-activation, ResNet-110"),
)

# Concepts the Learn page links to reference curves: the variants whose curves show the concept
# against Table 1's identity shortcut (the campaign's baseline), most instructive first. A link is
# offered only where the pack's runs show it: the difference exceeds the identity seeds' spread
# (trainers/core/separation.py); otherwise there is no link.
CONCEPTS: dict[str, tuple[dict[str, Any], ...]] = {
    "pre-activation": ({"ordering": "full_preact", "shortcut": "identity"},),
    "identity shortcut": (
        {"ordering": "original", "shortcut": "constant"},
        {"ordering": "original", "shortcut": "exclusive_gate"},
        {"ordering": "original", "shortcut": "shortcut_gate"},
    ),
}


# Issue #17's campaign: ResNet-110 on the paper's own schedule (64k iterations, warm-up, lr 0.1),
# grown a few thousand iterations per session on the CPU (`--until`). (table, row, seed), in
# training order: the pilot's four runs first (the identity pair gives the seed-to-seed spread
# every other difference is judged against), then the rest of Table 1's shortcuts.
CAMPAIGN_ROWS: tuple[tuple[str, str, int], ...] = (
    ("Table 1", "original", 0),
    ("Table 1", "original", 1),
    ("Table 1", "constant scaling 0.5 / 0.5", 0),
    ("Table 2", "full pre-activation, ResNet-110", 0),
    ("Table 1", "exclusive gating, b_g = -6", 0),
    ("Table 1", "shortcut-only gating, b_g = 0", 0),
    ("Table 1", "1x1 conv shortcut", 0),
    ("Table 1", "dropout shortcut 0.5", 0),
)
PLANS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "teaching": tuple((t, label, 0) for t, label in TEACHING_ROWS),
    "campaign110": CAMPAIGN_ROWS,
}


def plan_configs(
    n: int | None = None, schedule: str = "short", plan: str = "teaching", **overrides: Any
) -> list[RunConfig]:
    """The first `n` runs of `plan` (default: all) on `schedule`, with `overrides` (e.g. depth=20,
    dataset=folder:...). A depth override keeps each row's unit, ordering and shortcut. A seed
    override puts every row on that seed (rows that then coincide, such as a plan's seed pair,
    become one run); without it each row keeps its own seed."""
    if schedule not in SCHEDULES:
        raise KeyError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if plan not in PLANS:
        raise KeyError(f"unknown plan {plan!r}; choose one of: {', '.join(PLANS)}")
    rows = PLANS[plan][:n]
    configs = [_row(t, label).config(**{**SCHEDULES[schedule], "seed": seed, **overrides}) for t, label, seed in rows]
    return list({c.key: c for c in configs}.values())  # insertion order: the plan's


# --- building entries from the engine's result -------------------------------------------------
def entry_from_result(
    result: dict[str, Any], curve: list[dict[str, Any]], extra_provenance: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A pack run from `train()`'s result and its curve (the engine's result.json, as written)."""
    cfg = RunConfig.from_dict(result["config"])
    prov_in = dict(result.get("provenance") or {})
    speeds = [p["images_per_s"] for p in curve if p.get("type") == "metrics" and p.get("images_per_s")]
    wall = float(result["wall_time_s"])
    prov = {k: prov_in[k] for k in PROVENANCE_FIELDS if k in prov_in}
    prov.update(wall_time_s=wall, images_per_s=(sorted(speeds)[len(speeds) // 2] if speeds else None))
    prov.update(extra_provenance or {})
    res = {
        k: result.get(k)
        for k in (
            "status",
            "test_error",
            "test_loss",
            "train_loss",
            "iterations",
            "epochs",
            "parameters",
            "wall_time_s",
        )
    }
    for k, v in res.items():
        if isinstance(v, float) and not math.isfinite(v):
            res[k] = None  # a diverged run's loss; JSON has no NaN
    points = []
    for p in curve:
        if p.get("type") not in ("metrics", "eval"):
            continue
        q = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in p.items()}
        points.append(q)
    return {
        "key": cfg.key,
        "label": cfg.label(),
        "status": result["status"],
        "config": cfg.to_dict(),
        "result": res,
        "error": None,
        "meta": {
            "device": prov.get("device"),
            "device_name": prov.get("device_name"),
            "parameters": result.get("parameters"),
        },
        "curve": points,
        "schedule": schedule_name(cfg),
        "provenance": prov,
    }


def is_partial(run: dict[str, Any]) -> bool:
    """A run stopped part-way through its schedule (`reference --until`), to be grown later: it
    ships as "N of TOTAL iterations", never as a finished run."""
    res, cfg = run.get("result") or {}, run.get("config") or {}
    its, total = res.get("iterations"), cfg.get("iterations")
    return run.get("status") == "cancelled" and isinstance(its, int) and isinstance(total, int) and 0 < its < total


def new_pack(runs: Iterable[dict[str, Any]], note: str = "") -> dict[str, Any]:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": list(runs),
    }
    if note:
        doc["note"] = note
    return doc


def _identity(run: dict[str, Any]) -> tuple[str, str, str, str]:
    p = run["provenance"]
    return run["key"], p.get("device_name", ""), p.get("code_version", ""), p.get("finished_at", "")


def _grown_later(run: dict[str, Any], others: Iterable[dict[str, Any]]) -> bool:
    """A partial run that a later session grew further: another copy of the same key has more
    iterations and its curve begins with this one's (the pack keeps only the longest)."""
    if not is_partial(run):
        return False
    n = len(run["curve"])
    return any(
        o is not run and o["key"] == run["key"] and _trained(o) > _trained(run) and o["curve"][:n] == run["curve"]
        for o in others
    )


def merge_packs(*packs: dict[str, Any]) -> dict[str, Any]:
    """One pack of every distinct run (same key, device, commit and finish time = the same run); of
    a run grown across sessions (`reference --until`), only its longest copy."""
    seen: dict[tuple, dict[str, Any]] = {}
    notes = []
    for pack in packs:
        if pack.get("note") and pack["note"] not in notes:
            notes.append(pack["note"])
        for run in pack["runs"]:
            first = seen.setdefault(_identity(run), run)
            if len(run["provenance"]) > len(first["provenance"]):  # the same run, better described
                seen[_identity(run)] = run
    kept = list(seen.values())
    kept = [r for r in kept if not _grown_later(r, kept)]
    runs = sorted(kept, key=lambda r: r["provenance"].get("finished_at", ""), reverse=True)
    return new_pack(runs, note=" | ".join(notes))


def dumps(pack: dict[str, Any]) -> str:
    """Compact but diff-friendly: one run per line."""
    head = {k: v for k, v in pack.items() if k != "runs"}
    lines = [json.dumps(r, sort_keys=True, allow_nan=False, separators=(",", ":")) for r in pack["runs"]]
    body = ",\n".join(lines)
    head_text = json.dumps(head, sort_keys=True, allow_nan=False)[:-1]
    return f'{head_text}, "runs": [\n{body}\n]}}\n'


# --- reading: parse strictly, validate whole, then use ------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise PackError(f"duplicate field {k!r} in one JSON object")
        d[k] = v
    return d


def _no_constants(name: str) -> Any:
    raise PackError(f"{name} is not a number a pack may hold (JSON has no NaN or Infinity)")


def parse_pack(text: str, where: str = "pack") -> dict[str, Any]:
    """Strict JSON (no NaN/Infinity, no duplicate fields), then `validate_pack`."""
    if len(text.encode()) > MAX_BYTES:
        raise PackError(f"{where} is larger than {MAX_BYTES // 2**20} MB")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except PackError as e:
        raise PackError(f"{where}: {e}") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise PackError(f"{where} is not valid JSON ({e})") from None
    return validate_pack(doc, where)


def _check_type(value: Any, types: tuple[type, ...], field: str) -> None:
    if isinstance(value, bool) and bool not in types:
        raise PackError(f"{field} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
    if not isinstance(value, types):
        shown = repr(value)[:60]
        raise PackError(f"{field} must be {' or '.join(t.__name__ for t in types)}, got {shown}")
    if isinstance(value, float) and not math.isfinite(value):
        raise PackError(f"{field} must be finite, got {value!r}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise PackError(f"{field} is longer than {MAX_TEXT} characters")


def _finite_numbers(obj: Any, field: str) -> None:
    """No NaN/Infinity anywhere (a pack built in Python could hold them without parse_pack)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise PackError(f"{field} must be finite, got {obj!r}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite_numbers(v, f"{field}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_numbers(v, f"{field}[{i}]")


def validate_pack(doc: Any, where: str = "pack") -> dict[str, Any]:
    """The pack, checked whole (PackError naming the field otherwise). Each run goes through the
    the runs export's `validate_run` (trainers/core/runfile.py: config, key, status, result, curve) plus the pack's own bounds."""
    from .runfile import ImportFileError, validate_run

    if not isinstance(doc, dict):
        raise PackError(f"{where} must be a JSON object")
    if doc.get("format") != FORMAT:
        raise PackError(f"{where}: format must be {FORMAT!r}, got {str(doc.get('format'))[:60]!r}")
    if doc.get("version") != VERSION:
        raise PackError(f"{where}: version {doc.get('version')!r} is not {VERSION}")
    unknown = set(doc) - TOP_FIELDS
    if unknown:
        raise PackError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    for name in ("created_at", "note"):
        if name in doc:
            _check_type(doc[name], (str,), f"{where}.{name}")
    runs = doc.get("runs")
    if not isinstance(runs, list):
        raise PackError(f"{where}.runs must be a list")
    if len(runs) > MAX_RUNS:
        raise PackError(f"{where}.runs holds {len(runs)} runs; at most {MAX_RUNS}")
    seen: set[tuple] = set()
    for i, run in enumerate(runs):
        at = f"{where}.runs[{i}]"
        if not isinstance(run, dict):
            raise PackError(f"{at} must be an object")
        unknown = set(run) - RUN_FIELDS
        if unknown:
            raise PackError(f"{at}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        missing = sorted(RUN_FIELDS - {"error", "meta", "label"} - set(run))
        if missing:
            raise PackError(f"{at}: missing field(s) {', '.join(missing)}")
        if not isinstance(run["curve"], list) or len(run["curve"]) > MAX_CURVE_POINTS:
            n = len(run["curve"]) if isinstance(run["curve"], list) else None
            raise PackError(
                f"{at}.curve must be a list of at most {MAX_CURVE_POINTS} points"
                + (f", got {n}" if n is not None else "")
            )
        _finite_numbers(run, at)
        if run["status"] not in ("done", "fail", "diverged", "cancelled"):
            raise PackError(
                f"{at}.status must be done, fail, diverged or cancelled (a partial run), "
                f"got {str(run['status'])[:40]!r}"
            )
        if run["status"] == "cancelled" and not is_partial(run):
            raise PackError(
                f"{at}: a cancelled run ships only as a partial run: a result with 1 to "
                "config.iterations - 1 iterations"
            )
        try:
            # the pack's own fields (schedule, provenance) are checked below, the rest as an export's run
            rec, curve = validate_run({k: v for k, v in run.items() if k not in ("schedule", "provenance")}, at)
        except ImportFileError as e:
            raise PackError(str(e)) from None
        # what the UI shows comes from the validated config, not from the file's free text
        run["label"], run["curve"] = rec["label"], curve
        cfg = RunConfig.from_dict(run["config"])
        if run["schedule"] != schedule_name(cfg):
            raise PackError(
                f"{at}.schedule {str(run['schedule'])[:40]!r} is not its config's schedule {schedule_name(cfg)!r}"
            )
        prov = run["provenance"]
        if not isinstance(prov, dict):
            raise PackError(f"{at}.provenance must be an object")
        unknown = set(prov) - set(PROVENANCE_FIELDS)
        if unknown:
            raise PackError(f"{at}.provenance: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        for name in REQUIRED_PROVENANCE:
            if name not in prov:
                raise PackError(f"{at}.provenance.{name} is missing")
        for name, value in prov.items():
            _check_type(value, PROVENANCE_FIELDS[name], f"{at}.provenance.{name}")
        ident = _identity(run)
        if ident in seen:
            raise PackError(f"{at}: run {run['key']} from {prov['device_name']} appears twice")
        seen.add(ident)
    return doc


def read_pack(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise PackError(f"{path.name} is larger than {MAX_BYTES // 2**20} MB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PackError(f"cannot read {path}: {e}") from None
    return parse_pack(text, path.name)


def shipped_packs(directory: str | Path = PACK_DIR) -> list[Path]:
    return sorted(Path(directory).glob("*.json"))


def load_shipped(directory: str | Path = PACK_DIR) -> tuple[dict[str, Any], list[str]]:
    """Every shipped pack merged, and the problems of the ones that could not be read (the app
    still starts: a bad pack is reported and skipped, never half-loaded)."""
    packs, problems = [], []
    for path in shipped_packs(directory):
        try:
            packs.append(read_pack(path))
        except PackError as e:
            problems.append(str(e))
    return merge_packs(*packs), problems


# --- what the UI asks of a pack ----------------------------------------------------------------
def _matches(cfg: dict[str, Any], fields: dict[str, Any]) -> bool:
    return all(cfg.get(k) == v for k, v in fields.items())


def _trained(run: dict[str, Any]) -> int:
    return int((run.get("result") or {}).get("iterations") or 0)


def best_runs(pack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One run per config (key): the longest schedule, then the most iterations trained of it
    (a partial run grown in a later session wins over its earlier copy): key -> run."""
    out: dict[str, dict[str, Any]] = {}
    for run in sorted(pack["runs"], key=lambda r: (-int(r["config"].get("iterations", 0)), -_trained(r))):
        out.setdefault(run["key"], run)
    return out


def _signature(run: dict[str, Any]) -> str:
    """A run's variant: its config without the seed (the seeds of one variant form one series)."""
    cfg = dict(run["config"])
    cfg.pop("seed", None)
    return json.dumps(cfg, sort_keys=True)


def campaign_group(pack: dict[str, Any], *, baseline: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Issue #17's view: the deepest group of runs on the paper's full schedule (one depth, block and
    dataset; partial runs included) that holds the baseline variant (Table 1's identity shortcut)
    with at least two seeds, the seed spread every other difference is judged against. None if the
    pack has no such group.

    Returns {"depth", "dataset", "total" (the schedule's iterations), "trained" (the fewest
    iterations any run of the group has: the common part), "series": {label: [runs]} with the
    baseline first, "baseline": its label, "runs": every run}."""
    baseline = baseline or {"ordering": "original", "shortcut": "identity"}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in best_runs(pack).values():
        c = run["config"]
        if run["schedule"] != "paper" or run["status"] == "diverged" and not _trained(run):
            continue
        groups.setdefault((c["depth"], c["block"], c["dataset"], c["iterations"]), []).append(run)
    best: dict[str, Any] | None = None
    for (depth, _block, dataset, total), runs in sorted(groups.items(), key=lambda kv: -kv[0][0]):
        base = [r for r in runs if _matches(r["config"], baseline)]
        if len({r["config"]["seed"] for r in base}) < 2 or len({_signature(r) for r in runs}) < 2:
            continue
        by_sig: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(runs, key=lambda r: (not _matches(r["config"], baseline), r["config"]["seed"])):
            by_sig.setdefault(_signature(r), []).append(r)
        series = {
            RunConfig.from_dict(rs[0]["config"]).label(): sorted(rs, key=lambda r: r["config"]["seed"])
            for rs in by_sig.values()
        }
        best = {
            "depth": depth,
            "dataset": dataset,
            "total": total,
            "trained": min(_trained(r) for r in runs),
            "series": series,
            "baseline": next(iter(series)),
            "runs": runs,
        }
        break
    return best


def teaching_comparison(pack: dict[str, Any]) -> list[dict[str, Any]]:
    """The pack's best teaching comparison: the deepest, longest-trained group (same depth, dataset
    and schedule) that holds original vs full pre-activation, with every other teaching run of that
    group after them. Empty if the pack has no such pair."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in best_runs(pack).values():
        c = run["config"]
        groups.setdefault((c["depth"], c["dataset"], run["schedule"], c["iterations"]), []).append(run)

    def rank(run: dict[str, Any]) -> int:
        sig = {k: run["config"][k] for k in ("ordering", "shortcut", "block")}
        for i, (t, label) in enumerate(TEACHING_ROWS):
            row_cfg = _row(t, label).config().to_dict()
            if all(row_cfg[k] == v for k, v in sig.items()) and _same_params(run["config"], row_cfg):
                return i
        return len(TEACHING_ROWS)

    best: list[dict[str, Any]] = []
    best_score: tuple = ()
    for (depth, _ds, _sched, iters), runs in groups.items():
        ranked = sorted((r for r in runs if rank(r) < len(TEACHING_ROWS)), key=rank)
        ranks = {rank(r) for r in ranked}
        if not {0, 1} <= ranks:
            continue
        score = (depth, iters, len(ranked))
        if score > best_score:
            best, best_score = ranked, score
    return best


def _same_params(cfg: dict[str, Any], row_cfg: dict[str, Any]) -> bool:
    from .registry import SHORTCUTS

    return all(cfg.get(p) == row_cfg.get(p) for p in SHORTCUTS[cfg["shortcut"]].params)


def concept_runs(pack: dict[str, Any], concept: str) -> list[dict[str, Any]]:
    """The campaign runs that show `concept`: the baseline's seeds, then every variant of the
    concept whose training loss or test error differs from the baseline by more than the seeds'
    spread. Empty when no variant does (or the pack has no campaign group): no link then."""
    from .separation import compare

    group = campaign_group(pack)
    if group is None:
        return []
    series, base = group["series"], group["baseline"]
    wanted = {
        name: runs
        for name, runs in series.items()
        if name != base and any(_matches(runs[0]["config"], f) for f in CONCEPTS[concept])
    }
    if not wanted:
        return []
    result = compare([r["curve"] for r in series[base]], {n: [r["curve"] for r in rs] for n, rs in wanted.items()})
    shown = [row["name"] for row in result["rows"] if row["loss_exceeds"] or row["error_exceeds"]]
    return [*series[base], *(r for n in shown for r in wanted[n])] if shown else []


def paper_number(run: dict[str, Any]) -> tuple[PaperRow | None, bool]:
    """The paper's row for a reference run's variant, and whether it is the run's own depth. The
    paper's CIFAR-10 tables are ResNet-110/164: a shallower run (CPU sessions train ResNet-20) is
    shown beside the same variant's ResNet-110 number, marked as such. On the JPEG copy the row
    has comparable=False: indicative, never a reproduction."""
    cfg = RunConfig.from_dict(run["config"])
    row = paper_row(cfg)
    if row is not None:
        return row, True
    if cfg.block == "basic" and cfg.depth != 110:
        return paper_row(cfg.replace(depth=110)), False
    return None, False
