"""Issue #17's campaign machinery: runs grown part-way (`train(until=)`, `reference --until`) across
sessions from checkpoints kept beside the pack, packs that hold them as partial runs, and the rule
that says whether a difference exceeds the seed spread."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from trainers.core import reference_packs as ref
from trainers.core import separation
from trainers.core.config import RunConfig
from trainers.engine.train import train

pytestmark = pytest.mark.slow  # trains, or starts workers and a supervisor

TINY = dict(dataset="synthetic", depth=8, batch_size=32, train_size=512, test_size=256)


def _state(cache_dir: Path, cfg: RunConfig) -> dict:
    return torch.load(cache_dir / "runs" / cfg.key / "checkpoint.pt", weights_only=True)


def test_a_run_grown_in_stretches_is_the_run_trained_straight(tmp_path):
    # dropout: the global RNG carries over too (test_train checks the crash-and-resume path)
    cfg = RunConfig(**TINY, shortcut="dropout", iterations=16, log_every=4, eval_every=8)
    train(cfg, device="cpu", cache_dir=tmp_path / "straight")

    grown = tmp_path / "grown"
    first = train(cfg, device="cpu", cache_dir=grown, until=6)  # not on the log grid: logged and evaluated there
    assert first["status"] == "cancelled" and first["iterations"] == 6
    curve = json.loads((grown / "runs" / cfg.key / "result.json").read_text())["curve"]
    assert [e["iteration"] for e in curve if e["type"] == "eval"] == [6]
    assert _state(grown, cfg)["iteration"] == 6
    again = train(cfg, device="cpu", cache_dir=grown, until=6)  # already there: nothing trained
    assert again["iterations"] == 6 and again["status"] == "cancelled"
    last = train(cfg, device="cpu", cache_dir=grown)
    assert last["status"] == "done" and last["iterations"] == 16

    a, b = _state(tmp_path / "straight", cfg), _state(grown, cfg)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def _campaign(n: int = 4) -> list[RunConfig]:
    # the campaign's own plan and schedule, on a tiny net and data (the paper's 64k iterations, of
    # which a test trains a few)
    return ref.plan_configs(
        n, schedule="paper", plan="campaign110", depth=8, dataset="synthetic", log_every=1, eval_every=2
    )


def test_the_campaign_plan_is_issue_17s():
    cfgs = ref.plan_configs(schedule="paper", plan="campaign110")
    sig = [(c.ordering, c.shortcut, c.seed) for c in cfgs]
    assert sig[:4] == [
        ("original", "identity", 0),
        ("original", "identity", 1),
        ("original", "constant", 0),
        ("full_preact", "identity", 0),
    ]  # the pilot first
    assert {s for _, s, _ in sig} == {"identity", "constant", "exclusive_gate", "shortcut_gate", "conv1x1", "dropout"}
    gates = {c.shortcut: c.gate_bias for c in cfgs if "gate" in c.shortcut}
    assert gates == {"exclusive_gate": -6.0, "shortcut_gate": 0.0}
    assert all(c.depth == 110 and c.iterations == 64_000 and c.warmup_iterations == 400 for c in cfgs)
    with pytest.raises(KeyError):
        ref.plan_configs(plan="nope")


def test_a_seed_override_moves_every_row_to_that_seed():
    """`--set seed=1` used to be dropped silently (each row's own seed won): a run asked for at seed 1
    was trained, and labelled, at seed 0."""
    one = ref.plan_configs(1, "short", depth=20, seed=1)
    assert [c.seed for c in one] == [1] and one[0].key != ref.plan_configs(1, "short", depth=20)[0].key
    cfgs = ref.plan_configs(schedule="paper", plan="campaign110", seed=3)
    assert all(c.seed == 3 for c in cfgs)
    assert len(cfgs) == len({c.key for c in cfgs}) == 7  # the identity seed pair became one run


def test_generator_grows_runs_across_sessions_and_packs_them_as_partial(tmp_path):
    from trainers.engine.reference_generator import generate

    cfgs = _campaign(2)
    resume, out = tmp_path / "resume", tmp_path / "pack.json"
    generate(cfgs, out, device="cpu", cache_dir=tmp_path / "session1", until=2, resume_dir=resume)
    assert sorted(p.name for p in resume.iterdir()) == sorted(f"{c.key}{ext}" for c in cfgs for ext in (".json", ".pt"))
    pack = ref.read_pack(out)
    assert len(pack["runs"]) == 2 and all(ref.is_partial(r) and r["result"]["iterations"] == 2 for r in pack["runs"])

    # a later session: a fresh clone has no cache, only the pack and resume/
    events: list[dict] = []
    import trainers.engine.reference_generator as gen

    real_train = gen.__dict__.get("train")
    assert real_train is None  # imported inside generate(): patch the engine's
    import trainers.engine.train as engine_train

    original = engine_train.train

    def spy(cfg, **kw):
        inner = kw.pop("on_event", None)

        def both(ev):
            events.append(ev)
            if inner is not None:
                inner(ev)

        return original(cfg, **kw, on_event=both)

    engine_train.train = spy
    try:
        generate(cfgs, out, device="cpu", cache_dir=tmp_path / "session2", until=4, resume_dir=resume)
    finally:
        engine_train.train = original
    starts = [e for e in events if e["type"] == "start"]
    assert [(e["resumed"], e["iteration"]) for e in starts] == [(True, 2), (True, 2)]  # never from zero
    pack = ref.read_pack(out)
    assert len(pack["runs"]) == 2  # the grown copy replaced the shorter one
    for run in pack["runs"]:
        assert run["result"]["iterations"] == 4 and run["status"] == "cancelled"
        segs = run["provenance"]["segments"]
        assert [(s["from"], s["to"]) for s in segs] == [(0, 2), (2, 4)]
        assert run["provenance"]["wall_time_s"] == pytest.approx(sum(s["wall_time_s"] for s in segs))
        assert run["provenance"]["recipe"]  # the recipe travels with every reference run
        from trainers.engine.cpu import cpu_model

        # the CPU as the machine names it (/proc/cpuinfo), and the threads it trained on
        n = run["provenance"]["threads"]
        assert n == torch.get_num_threads()
        assert run["provenance"]["device_name"] == f"CPU ({cpu_model()}, {n} thread{'s' if n != 1 else ''})"
        assert [p["iteration"] for p in run["curve"] if p["type"] == "metrics"] == [1, 2, 3, 4]

    # a process cut mid-stretch (a session's end) leaves a cache checkpoint at 5 and no segment; the
    # next one goes on from 5: its segment says so, and its wall time covers 5..6 only
    original(cfgs[0], device="cpu", cache_dir=tmp_path / "session2", until=5)
    generate(cfgs, out, device="cpu", cache_dir=tmp_path / "session2", until=6, resume_dir=resume)
    by_key = {r["key"]: r for r in ref.read_pack(out)["runs"]}
    spans = [(s["from"], s["process_from"], s["to"]) for s in by_key[cfgs[0].key]["provenance"]["segments"]]
    assert spans == [(0, 0, 2), (2, 2, 4), (4, 5, 6)]
    assert [(s["from"], s["process_from"]) for s in by_key[cfgs[1].key]["provenance"]["segments"]][-1] == (4, 4)


def test_a_cancelled_run_ships_only_as_a_partial_one(tmp_path):
    from trainers.engine.reference_generator import generate

    out = tmp_path / "pack.json"
    generate(_campaign(1), out, device="cpu", cache_dir=tmp_path / "c", until=2, resume_dir=tmp_path / "r")
    doc = json.loads(out.read_text())
    bad = copy.deepcopy(doc)
    bad["runs"][0]["result"]["iterations"] = bad["runs"][0]["config"]["iterations"]
    with pytest.raises(ref.PackError, match="partial"):
        ref.validate_pack(bad)


def _curve(losses: list[float], error: float, step: int = 20) -> list[dict]:
    pts = [{"type": "metrics", "iteration": step * (i + 1), "train_loss": v} for i, v in enumerate(losses)]
    return pts + [{"type": "eval", "iteration": step * len(losses), "test_error": error}]


def test_a_difference_counts_only_beyond_the_baseline_seed_spread():
    base = [_curve([2.0] * 10, 60.0), _curve([2.1] * 10, 64.0)]  # spread: 0.1 in loss, 4 points of error
    result = separation.compare(
        base, {"far": [_curve([2.5] * 10, 61.0)], "near": [_curve([2.12] * 10, 80.0)]}, window=100
    )
    rows = {r["name"]: r for r in result["rows"]}
    assert result["at"] == 200 and result["eval_at"] == 200
    assert rows["far"]["loss_exceeds"] is True and rows["far"]["error_exceeds"] is False
    assert rows["near"]["loss_exceeds"] is False and rows["near"]["error_exceeds"] is True
    assert rows["far"]["loss_difference"] == pytest.approx(0.45)
    text = separation.verdict_text(result, "identity")
    assert "beyond that spread: far" in text and "within it: near" in text
    assert "the 2 identity seeds" in text
    one = separation.compare(base[:1], {"far": [_curve([2.5] * 10, 61.0)]})  # one seed: nothing to judge by
    assert one["rows"][0]["loss_exceeds"] is None


def test_runs_are_compared_where_all_have_been():
    short, long = _curve([2.0] * 5, 50.0), _curve([3.0] * 10, 40.0)
    result = separation.compare([short, _curve([2.0] * 10, 50.0)], {"v": [long]})
    assert result["at"] == 100 and result["eval_at"] is None  # no evaluation all three share
    assert result["rows"][0]["loss_difference"] == pytest.approx(1.0)


def test_campaign_group_needs_the_baseline_seed_pair(tmp_path):
    from trainers.engine.reference_generator import generate

    out = tmp_path / "pack.json"
    cfgs = _campaign(4)
    generate([cfgs[0], cfgs[2]], out, device="cpu", cache_dir=tmp_path / "c", until=2, resume_dir=tmp_path / "r")
    assert ref.campaign_group(ref.read_pack(out)) is None  # one identity seed: no spread to show
    generate(cfgs, out, device="cpu", cache_dir=tmp_path / "c", until=2, resume_dir=tmp_path / "r")
    g = ref.campaign_group(ref.read_pack(out))
    assert g is not None and g["total"] == 64_000 and g["trained"] == 2 and g["depth"] == 8
    labels = list(g["series"])
    assert labels[0] == g["baseline"] == "ResNet-8 original / identity"
    assert [r["config"]["seed"] for r in g["series"][labels[0]]] == [0, 1]
    assert len(labels) == 3  # identity (2 seeds), constant scaling, full pre-activation


def test_report_quotes_the_campaign_against_the_seed_spread(campaign_pack_file, reference_pack_file):
    import subprocess
    import sys

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "trainers", "reference", *map(str, args), "--report"],
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = run(campaign_pack_file)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["baseline"] == "ResNet-8 original / identity" and doc["at"] == 4 and doc["baseline"]
    assert doc["baseline"] and len(doc["rows"]) == 2 and "identity seeds span" in doc["text"]
    cut = json.loads(run(campaign_pack_file, "--until", 2).stdout)  # as the pilot was read: at iteration 2
    assert cut["at"] == 2 and cut["eval_at"] == 2
    refused = run(reference_pack_file)  # one seed per variant: nothing to judge by
    assert refused.returncode == 2 and "no campaign group" in refused.stderr
