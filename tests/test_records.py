"""The record types of trainers/core/records.py are what really travels: a tiny real pack of two runs
goes through the worker and the store, and every event, curve point, result and run record it leaves
is checked against its TypedDict, key by key (no undeclared key, no missing required one, each value
of its declared type)."""

from __future__ import annotations

import json
import signal
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from trainers.core import records
from trainers.core.config import RunConfig
from trainers.runs import Store, submit


def mismatches(value: Any, tp: Any, where: str) -> list[str]:
    """How `value` departs from the type `tp` (empty: it conforms)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not a {tp.__name__}"]
        hints = get_type_hints(tp)
        out = [f"{where}.{k}: not declared in {tp.__name__}" for k in value if k not in hints]
        out += [f"{where}.{k}: missing from {tp.__name__}" for k in sorted(tp.__required_keys__) if k not in value]
        for k, v in value.items():
            if k in hints:
                out += mismatches(v, hints[k], f"{where}.{k}")
        return out
    if origin in (Union, types.UnionType):
        if any(not mismatches(value, a, where) for a in args):
            return []
        return [f"{where}: {value!r} is none of {args}"]
    if origin is Literal:
        return [] if value in args else [f"{where}: {value!r} is not one of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, not a list"]
        return [m for i, v in enumerate(value) for m in mismatches(v, args[0], f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not a dict"]
        return [
            m
            for k, v in value.items()
            for m in mismatches(k, args[0], f"{where} key") + mismatches(v, args[1], f"{where}.{k}")
        ]
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is type(None):
        ok = value is None
    else:
        ok = isinstance(value, tp)
    return [] if ok else [f"{where}: {value!r} is not {getattr(tp, '__name__', tp)}"]


EVENTS = {
    "start": records.StartEvent,
    "metrics": records.MetricsEvent,
    "eval": records.EvalEvent,
    "checkpoint": records.CheckpointEvent,
    "end": records.EndEvent,
}


def test_the_checker_finds_what_departs():
    good = {"type": "eval", "iteration": 4, "epoch": 1.0, "test_error": 50.0, "test_loss": 2}
    assert not mismatches(good, records.EvalEvent, "ev")
    assert mismatches({**good, "extra": 1}, records.EvalEvent, "ev") == ["ev.extra: not declared in EvalEvent"]
    assert mismatches({k: v for k, v in good.items() if k != "epoch"}, records.EvalEvent, "ev")
    assert mismatches({**good, "iteration": "4"}, records.EvalEvent, "ev")
    assert mismatches({**good, "type": "metrics"}, records.EvalEvent, "ev")
    assert mismatches({"notes": [1]}, records.RunRecord, "rec") == ["rec.notes[0]: 1 is not str"]


def test_a_real_pack_leaves_only_declared_records_and_events(cache_dir, monkeypatch):
    from trainers.runs import worker

    monkeypatch.setenv("TRAINERS_HEARTBEAT_S", "0.3")
    cfgs = [
        RunConfig(
            depth=8,
            dataset="synthetic",
            iterations=6,
            batch_size=32,
            train_size=128,
            test_size=64,
            log_every=2,
            eval_every=3,
            seed=s,
        )
        for s in (1, 2)
    ]
    store = Store(cache_dir)
    for c in cfgs:
        submit(c, cache_dir, start_supervisor=False)
    attempts = [store.claim(c.key, "local", "cpu0") for c in cfgs]
    sent: list[tuple[str, dict]] = []
    apply_event = Store.apply_event

    def spy(self, key, attempt, ev):
        sent.append((key, json.loads(json.dumps(ev))))  # what crosses a process boundary: JSON
        return apply_event(self, key, attempt, ev)

    monkeypatch.setattr(Store, "apply_event", spy)
    old = signal.getsignal(signal.SIGTERM)
    try:
        assert worker.run_worker([c.key for c in cfgs], cache_dir, attempts, device="cpu") == 0
    finally:
        signal.signal(signal.SIGTERM, old)

    store.set_tags(cfgs[0].key, ["mine", "two seeds"])
    kinds = [ev["type"] for _, ev in sent]
    assert set(kinds) == set(EVENTS) and len(sent) > 10
    problems = [m for key, ev in sent for m in mismatches(ev, EVENTS[ev["type"]], f"{key}:{ev['type']}")]
    for c in cfgs:
        rec = store.get(c.key)
        assert rec is not None and rec["status"] in ("done", "fail")
        assert rec["result"]["provenance"]["packed_with"] == [c.key for c in cfgs]
        problems += mismatches(rec, records.RunRecord, f"record {c.key}")
        problems += mismatches(rec["result"], records.Result, f"result {c.key}")
        curve = store.curve(c.key)
        assert [p["type"] for p in curve].count("eval") == 2
        problems += [m for p in curve for m in mismatches(p, records.CurvePoint, f"curve {c.key}")]
        saved = json.loads((cache_dir / "runs" / c.key / "result.json").read_text())
        problems += mismatches({k: v for k, v in saved.items() if k != "curve"}, records.Result, "result.json")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "name",
    [
        "StartEvent",
        "MetricsEvent",
        "EvalEvent",
        "CheckpointEvent",
        "EndEvent",
        "HeartbeatEvent",
        "Result",
        "Provenance",
        "RunRecord",
    ],
)
def test_every_record_type_is_a_typeddict(name):
    assert is_typeddict(getattr(records, name))
