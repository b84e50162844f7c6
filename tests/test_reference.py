"""Reference packs (trainers/core/reference_packs.py): the generator's pack round-trips, merges without
duplicates, and a hostile pack is refused whole with a message naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from trainers.core import reference_packs as ref
from trainers.core.config import RunConfig


@pytest.fixture
def pack(reference_pack_file: Path) -> dict:
    return ref.read_pack(reference_pack_file)


def test_generated_pack_round_trips(pack, reference_pack_file):
    assert [r["config"]["ordering"] for r in pack["runs"]] != []
    assert {r["config"]["ordering"] for r in pack["runs"]} == {"original", "full_preact"}
    for run in pack["runs"]:
        cfg = RunConfig.from_dict(run["config"])
        assert run["key"] == cfg.key
        assert run["schedule"] == "4 its, 512/256 images"
        assert run["provenance"]["device"] == "cpu" and run["provenance"]["dataset"]
        assert run["provenance"]["wall_time_s"] > 0
        assert any(p["type"] == "eval" for p in run["curve"])
        assert run["result"]["iterations"] == 4
    again = ref.parse_pack(ref.dumps(pack))
    assert again["runs"] == pack["runs"]


def test_generator_repacks_without_retraining(reference_pack_file, tmp_path):
    from trainers.engine.reference_generator import generate

    cache = reference_pack_file.parent.parent / "cache"
    cfgs = ref.plan_configs(2, "smoke", depth=8, dataset="synthetic", iterations=4, log_every=1, eval_every=2)
    before = {p: p.stat().st_mtime_ns for p in cache.glob("runs/*/result.json")}
    out = tmp_path / "again.json"
    pack = generate(cfgs, out, device="cpu", cache_dir=cache, merge=[reference_pack_file])
    assert len(pack["runs"]) == 2  # the same runs: merged, not duplicated
    assert {p: p.stat().st_mtime_ns for p in cache.glob("runs/*/result.json")} == before


def test_generator_skips_a_run_another_process_is_training(tmp_path, capsys):
    """Two generators given the same run (an overlapping --pick) must not write one checkpoint from
    two processes: the second finds the run's lock held and skips it, saying so."""
    import fcntl

    from trainers.engine.reference_generator import generate

    cfgs = ref.plan_configs(2, "smoke", depth=8, dataset="synthetic", iterations=4, log_every=1, eval_every=2)
    busy = tmp_path / "cache" / "runs" / cfgs[0].key
    busy.mkdir(parents=True)
    with open(busy / "generator.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another process" holds the first run
        pack = generate(cfgs, tmp_path / "p.json", device="cpu", cache_dir=tmp_path / "cache")
    assert [r["key"] for r in pack["runs"]] == [cfgs[1].key]  # the free run trained and packed
    assert not (busy / "result.json").exists() and not (busy / "checkpoint.pt").exists()
    assert "is being trained by another process; skipped" in capsys.readouterr().err
    again = generate(cfgs, tmp_path / "p.json", device="cpu", cache_dir=tmp_path / "cache")  # lock released
    assert {r["key"] for r in again["runs"]} == {c.key for c in cfgs}


def test_merge_dedupes_by_key_and_provenance(pack):
    other = copy.deepcopy(pack)
    other["runs"][0]["provenance"]["device_name"] = "NVIDIA H200"
    merged = ref.merge_packs(pack, pack, other)
    assert len(merged["runs"]) == len(pack["runs"]) + 1
    ref.validate_pack(merged)


def test_teaching_comparison_and_concepts(pack):
    runs = ref.teaching_comparison(pack)
    assert [r["config"]["ordering"] for r in runs] == ["original", "full_preact"]
    # one seed per variant: no spread to judge a difference by, so no run "shows" a concept
    assert ref.concept_runs(pack, "pre-activation") == []
    assert ref.concept_runs(pack, "identity shortcut") == []
    assert ref.paper_number(runs[1]) == (None, False)  # synthetic data: the paper has no number
    jpeg = copy.deepcopy(runs[1])
    jpeg["config"]["dataset"] = "folder:data/cifar10-jpeg.tar.gz"
    row, same_depth = ref.paper_number(jpeg)
    # ResNet-8 beside the paper's ResNet-110, indicative only on the JPEG copy
    assert row.reported == 6.37 and not same_depth and not row.comparable


def _hostile(pack: dict, change) -> str:
    doc = copy.deepcopy(pack)
    change(doc)
    return json.dumps(doc)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d["runs"][0]["result"].update(test_error="7.1"), "test_error"),
        (lambda d: d["runs"][0]["provenance"].update(wall_time_s="12"), "provenance.wall_time_s"),
        (lambda d: d["runs"][0]["provenance"].update(tf32="yes"), "provenance.tf32"),
        (lambda d: d["runs"][0]["provenance"].pop("device_name"), "provenance.device_name"),
        (lambda d: d["runs"][0]["provenance"].update(secret="x"), "unknown field(s) secret"),
        (lambda d: d["runs"][0].update(pickle="gASV"), "unknown field(s) pickle"),
        (lambda d: d.update(extra=1), "unknown field(s) extra"),
        (lambda d: d["runs"][0]["config"].update(depth=21), "depth"),
        (lambda d: d["runs"][0].update(key="0" * 16), "does not match its config"),
        (lambda d: d["runs"][0]["curve"][0].update(train_loss=[1, 2]), "train_loss"),
        (lambda d: d["runs"][0].update(curve=[d["runs"][0]["curve"][0]] * (ref.MAX_CURVE_POINTS + 1)), "curve"),
        (lambda d: d["runs"].append(d["runs"][0]), "appears twice"),
        (lambda d: d.update(runs={}), "runs must be a list"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d["runs"][0]["provenance"].update(device_name="x" * 1000), "longer than"),
    ],
)
def test_hostile_pack_is_refused_naming_the_field(pack, change, field):
    with pytest.raises(ref.PackError, match=field.replace("(", r"\(").replace(")", r"\)")):
        ref.parse_pack(_hostile(pack, change))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(pack, literal):
    text = _hostile(pack, lambda d: d["runs"][0]["result"].update(test_error=123.25)).replace("123.25", literal)
    with pytest.raises(ref.PackError, match=literal.lstrip("-")):
        ref.parse_pack(text)
    doc = copy.deepcopy(pack)
    doc["runs"][0]["result"]["test_error"] = float("nan")  # built in Python, never parsed
    with pytest.raises(ref.PackError, match="test_error must be finite"):
        ref.validate_pack(doc)


def test_duplicate_json_fields_and_oversize_files_are_refused(pack, tmp_path):
    text = json.dumps(pack)
    dup = text.replace('"format":', '"format": "x", "format":', 1)
    with pytest.raises(ref.PackError, match="duplicate field 'format'"):
        ref.parse_pack(dup)
    big = tmp_path / "big.json"
    big.write_text(" " * (ref.MAX_BYTES + 1))
    with pytest.raises(ref.PackError, match="larger than"):
        ref.read_pack(big)


def test_a_bad_shipped_pack_is_skipped_not_half_loaded(reference_pack_file, tmp_path):
    (tmp_path / "good.json").write_text(reference_pack_file.read_text())
    (tmp_path / "bad.json").write_text('{"format": "resnet-v2-explorer/reference", "version": 1, "runs": [1]}')
    doc, problems = ref.load_shipped(tmp_path)
    assert len(doc["runs"]) == 2
    assert len(problems) == 1 and "bad.json" in problems[0]


def test_shipped_packs_are_valid_and_honest():
    """What ships was trained by the generator: every run says where, on what, and for how long."""
    for path in ref.shipped_packs():
        doc = ref.read_pack(path)
        assert path.stat().st_size < 4 * 2**20
        for run in doc["runs"]:
            p = run["provenance"]
            assert p["generator"] == "python -m trainers reference"
            assert p["dataset"] and p["device_name"] and p["code_version"]
            assert run["schedule"]


def test_plan_starts_with_the_headline_pair():
    cfgs = ref.plan_configs(schedule="short")
    assert [(c.ordering, c.shortcut) for c in cfgs[:3]] == [
        ("original", "identity"),
        ("full_preact", "identity"),
        ("original", "conv1x1"),
    ]
    assert all(c.depth == 110 and c.iterations == 8000 for c in cfgs)
    assert len({c.key for c in cfgs}) == len(cfgs)


@pytest.mark.slow
def test_generator_runs_on_a_bare_gpu_machine(tmp_path):
    """torch only (no diskcache, streamlit, pandas): the generator trains, validates and writes."""
    from test_engine_alone import _run

    out = _run(
        tmp_path,
        "-m",
        "trainers",
        "reference",
        str(tmp_path / "p.json"),
        "--schedule",
        "smoke",
        "--runs",
        "1",
        "--set",
        "depth=8",
        "--set",
        "dataset=synthetic",
        "--set",
        "iterations=2",
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["runs"] == 1
    assert len(ref.read_pack(tmp_path / "p.json")["runs"]) == 1


def test_labels_and_schedules_come_from_the_config(pack):
    doc = copy.deepcopy(pack)
    doc["runs"][0]["label"] = "[click me](http://example.com)"
    assert ref.validate_pack(doc)["runs"][0]["label"] == RunConfig.from_dict(doc["runs"][0]["config"]).label()
    doc["runs"][0]["schedule"] = "paper"  # a 4-iteration run cannot claim the paper's schedule
    with pytest.raises(ref.PackError, match="schedule 'paper' is not its config's schedule"):
        ref.validate_pack(doc)
