"""Export and import: JSON and CSV round trips with curves; bad files change nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.core.config import RunConfig
from trainers.runs import Store
from trainers.runs.export import ImportFileError, import_file, write_export

ROOT = Path(__file__).resolve().parents[1]


def _run(store: Store, seed: int, status: str = "done") -> RunConfig:
    cfg = RunConfig(depth=8, dataset="synthetic", iterations=20, seed=seed)
    store.create(cfg.to_dict(), cfg.label(), cfg.key)
    a = store.claim(cfg.key, "local", "cpu0")
    store.apply_event(cfg.key, a, {"type": "start", "iteration": 0, "total": 20, "device": "cpu"})
    for i in (10, 20):
        store.apply_event(
            cfg.key,
            a,
            {
                "type": "metrics",
                "iteration": i,
                "epoch": i / 4,
                "train_loss": 2.0 / i,
                "train_error": 50.0,
                "lr": 0.1,
                "images_per_s": 1e3,
                "elapsed_s": 1.0,
                "eta_s": 0.0,
            },
        )
        store.apply_event(
            cfg.key, a, {"type": "eval", "iteration": i, "epoch": i / 4, "test_error": 40.0 - i, "test_loss": 1.5}
        )
    store.finish(
        cfg.key,
        a,
        {
            "key": cfg.key,
            "status": status,
            "test_error": 20.5 + seed,
            "iterations": 20,
            "config": cfg.to_dict(),
            # as train() writes it: the recipe is one nested object
            "provenance": {"device": "cpu", "recipe": {"allow_tf32": False, "nesterov": False}},
        },
    )
    return cfg


@pytest.fixture
def source(tmp_path) -> Store:
    store = Store(tmp_path / "source")
    for seed in range(3):
        _run(store, seed, "fail")
    store.create(RunConfig(depth=8, seed=9).to_dict(), "queued one", RunConfig(depth=8, seed=9).key)
    return store


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_round_trip_with_curves(source, tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    assert write_export(path, source) == 3  # finished runs only
    report = import_file(path, tmp_path / "dest")
    assert len(report["imported"]) == 3 and report["skipped"] == []
    dest = Store(tmp_path / "dest")
    for rec in source.list_runs(("fail",)):
        got = dest.get(rec["key"])
        assert got["status"] == "fail" and got["result"] == rec["result"] and got["backend"] == "import"
        assert dest.curve(rec["key"]) == source.curve(rec["key"])
    again = import_file(path, tmp_path / "dest")  # the local records win
    assert again["imported"] == [] and len(again["skipped"]) == 3


def _doc(source: Store, tmp_path: Path) -> dict:
    path = tmp_path / "good.json"
    write_export(path, source)
    return json.loads(path.read_text())


def _bad(tmp_path: Path, doc_or_text, name="bad.json") -> Path:
    path = tmp_path / name
    path.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return path


def test_bad_files_get_a_clear_message_and_change_nothing(source, tmp_path):
    dest = tmp_path / "dest"
    doc = _doc(source, tmp_path)
    cases = {
        "not valid JSON": "{runs: oops",
        "not a runs export": {"hello": "world"},
        "invalid config: unknown ordering": None,
        "does not match its config": None,
        "must be numbers": None,
        "only finished runs": None,
    }
    bad_config = json.loads(json.dumps(doc))
    bad_config["runs"][2]["config"]["ordering"] = "sideways"  # runs 1 and 2 are fine: all or nothing
    cases["invalid config: unknown ordering"] = bad_config
    bad_key = json.loads(json.dumps(doc))
    bad_key["runs"][1]["config"]["seed"] = 99
    cases["does not match its config"] = bad_key
    bad_point = json.loads(json.dumps(doc))
    bad_point["runs"][0]["curve"][1]["test_error"] = "__import__('os')"
    cases["must be numbers"] = bad_point
    running = json.loads(json.dumps(doc))
    running["runs"][0]["status"] = "running"
    cases["only finished runs"] = running
    for message, content in cases.items():
        with pytest.raises(ImportFileError, match=message):
            import_file(_bad(tmp_path, content), dest)
    csv_path = tmp_path / "good.csv"
    write_export(csv_path, source)
    broken_csv = csv_path.read_text().replace(",eval,", ",evil,", 1)
    with pytest.raises(ImportFileError, match="row must be run, metrics or eval"):
        import_file(_bad(tmp_path, broken_csv, "bad.csv"), dest)
    assert Store(dest).list_runs() == []


def test_cli_export_import(source, tmp_path):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "trainers.runs", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    out = cli("export", str(tmp_path / "all.csv"), "--cache-dir", str(source.cache_dir))
    assert out.returncode == 0 and "exported 3" in out.stdout
    out = cli("import", str(tmp_path / "all.csv"), "--cache-dir", str(tmp_path / "dest"))
    assert out.returncode == 0 and "imported 3 runs" in out.stdout
    _bad(tmp_path, "nonsense", "x.json")
    out = cli("import", str(tmp_path / "x.json"), "--cache-dir", str(tmp_path / "dest"))
    assert out.returncode == 2 and "not valid JSON" in out.stderr and "nothing was imported" in out.stderr
