"""Sweeps: the results table's numbers, and the CLI end to end on a tiny grid (re-run safe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.core.config import ConfigError, RunConfig
from trainers.core.presets import PRESETS, preset_configs
from trainers.runs import Store
from trainers.runs.sweeps import (
    format_table,
    parse_assignments,
    progress_counts,
    results_table,
    sweep_configs,
    sweep_runs,
)

ROOT = Path(__file__).resolve().parents[1]


def _finished(store: Store, cfg: RunConfig, status: str, test_error: float | None) -> None:
    store.create(cfg.to_dict(), cfg.label(), cfg.key)
    a = store.claim(cfg.key, "local", "cpu0")
    store.finish(
        cfg.key,
        a,
        {
            "key": cfg.key,
            "status": status,
            "test_error": test_error,
            "iterations": cfg.iterations,
            "config": cfg.to_dict(),
        },
    )


def test_results_table_median_range_paper_and_fail(cache_dir):
    store = Store(cache_dir)
    table2 = preset_configs("table2", seeds=5, schedule="quick")
    original = [c for c in table2 if c.ordering == "original" and c.depth == 110]
    preact = [c for c in table2 if c.ordering == "full_preact" and c.depth == 110]
    for cfg, err in zip(original, [7.0, 6.5, 8.0, 6.0, 7.5]):
        _finished(store, cfg, "done", err)
    _finished(store, preact[0], "done", 6.0)
    _finished(store, preact[1], "fail", 35.0)  # stored by an older engine: a short run is not a "fail"
    _finished(store, preact[2], "diverged", None)  # counts as +inf
    store.save_sweep("table2", [c.key for c in table2])

    rows = {(r["label"]): r for r in results_table(sweep_runs(store, "table2"), preset="table2")}
    orig = rows["original, ResNet-110"]
    assert orig["n"] == 5 and orig["median"] == 7.0 and (orig["min"], orig["max"]) == (6.0, 8.0)
    assert orig["paper"] == 6.61 and orig["difference"] == pytest.approx(7.0 - 6.61)
    assert orig["schedule"] == "quick"
    pre = rows["full pre-activation, ResNet-110"]
    assert pre["n"] == 3 and pre["median"] == 35.0 and pre["difference"] == pytest.approx(35.0 - 6.37)
    assert pre["statuses"] == {"done": 2, "diverged": 1} and pre["ours"] == "35.00"
    text = format_table(results_table(sweep_runs(store, "table2"), preset="table2"))
    assert "7.00 (5)" in text and "6.00–8.00" in text and "+0.39" in text
    assert "35.00 (3)" in text and "6.00–diverged" in text and "+28.63" in text and "fail" not in text


def test_fail_only_on_the_papers_schedule(cache_dir):
    store = Store(cache_dir)
    row = next(r for r in PRESETS["table2"].rows if r.label == "full pre-activation, ResNet-110")
    for seed, err in enumerate((6.0, 35.0, 40.0)):
        _finished(store, row.config(seed=seed), "fail" if err > 20 else "done", err)
    (r,) = results_table(sweep_runs(store, "table2"), preset="table2")
    assert r["schedule"] == "paper" and r["ours"] == "fail (35.0)" and r["difference"] is None
    assert r["statuses"] == {"done": 1, "fail": 2}
    assert "fail (35.0) (3)" in format_table([r]) and "ours fails" in format_table([r])


def test_sweep_progress_counts_statuses_as_shown(cache_dir):
    """Issue #18, item 6: `sweep`'s progress line counted the stored status: a run of today's engine
    (stored "done") on the paper's schedule above 20 % is a "fail", an older short "fail" is done."""
    store = Store(cache_dir)
    row = next(r for r in PRESETS["table2"].rows if r.label == "full pre-activation, ResNet-110")
    _finished(store, row.config(seed=0), "done", 35.0)
    _finished(store, row.config(seed=1), "done", 25.0)
    _finished(store, row.config(iterations=100, seed=2), "fail", 80.0)
    counts = progress_counts(
        [store.get(c.key) for c in (row.config(seed=0), row.config(seed=1), row.config(iterations=100, seed=2))]
    )
    assert counts == {"fail": 2, "done": 1}  # as stored: 2 done, 1 fail


def test_preset_results_without_a_sweep_record_match_stored_runs(cache_dir):
    store = Store(cache_dir)
    row = PRESETS["table1"].rows[1]  # constant scaling 0: the paper says fail
    _finished(store, row.config(), "fail", 80.0)
    _finished(store, row.config(iterations=100, seed=1), "fail", 80.0)  # short: a number, not a fail
    _finished(store, RunConfig(depth=20, iterations=100), "done", 9.0)  # in no table
    full, short = sorted(results_table(sweep_runs(store, "table1"), preset="table1"), key=lambda r: -r["iterations"])
    assert full["paper"] == short["paper"] == "fail"
    assert full["ours"] == "fail (80.0)" and "both fail" in format_table([full])
    assert short["ours"] == "80.00" and "paper fails (64k its)" in format_table([short])


def test_grids_and_assignments():
    assert parse_assignments(["depth=20", "lr=0.05", "dataset=synthetic", "augment=false"]) == {
        "depth": 20,
        "lr": 0.05,
        "dataset": "synthetic",
        "augment": False,
    }
    cfgs = sweep_configs(
        "mine",
        seeds=2,
        schedule="smoke",
        overrides={"dataset": "synthetic"},
        grid=parse_assignments(["depth=8,14", "ordering=original,full_preact"], many=True),
    )
    assert len(cfgs) == 8 and {c.depth for c in cfgs} == {8, 14} and {c.seed for c in cfgs} == {0, 1}
    with pytest.raises(ConfigError, match="--grid"):
        sweep_configs("mine", 1)
    with pytest.raises(ConfigError, match="unknown ordering"):
        sweep_configs("mine", 1, grid={"ordering": ["sideways"]})


def test_an_explicit_shortcut_bn_survives_a_grid_over_shortcuts():
    """Issue #18, item 1: `sweep mine --set shortcut_bn=false --grid shortcut=conv1x1,exclusive_gate`
    trained both with shortcut BN: the grid's new shortcut re-resolved the asked-for false as "auto"."""
    grid = parse_assignments(["shortcut=conv1x1,exclusive_gate"], many=True)
    off = sweep_configs("mine", seeds=1, schedule="smoke", overrides={"shortcut_bn": False}, grid=grid)
    assert [(c.shortcut, c.shortcut_bn) for c in off] == [("conv1x1", False), ("exclusive_gate", False)]
    on = sweep_configs(
        "mine",
        seeds=1,
        schedule="smoke",
        overrides={"shortcut_bn": True},
        grid=parse_assignments(["ordering=full_preact", "shortcut=conv1x1"], many=True),
    )
    assert [c.shortcut_bn for c in on] == [True]  # auto would say False for a pre-activation net
    auto = sweep_configs("mine", seeds=1, schedule="smoke", grid=grid)  # not asked: the paper's choice
    assert [c.shortcut_bn for c in auto] == [True, True]
    # a grid over the field itself, and a --set of an automatic schedule field, are kept too
    both = sweep_configs(
        "mine",
        seeds=1,
        schedule="smoke",
        overrides={"log_every": 5, "shortcut": "conv1x1"},
        grid=parse_assignments(["shortcut_bn=true,false", "iterations=40,80"], many=True),
    )
    assert {(c.shortcut_bn, c.iterations, c.log_every) for c in both} == {
        (b, i, 5) for b in (True, False) for i in (40, 80)
    }


def _cli(*args: str, cache_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TRAINERS_POLL_S": "0.3",
        "TRAINERS_IDLE_EXIT_S": "2",
        "TRAINERS_GPUS": "",
        "TRAINERS_CPU_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "trainers", *args, "--cache-dir", str(cache_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_cli_sweep_status_results_rerun(cache_dir):
    grid = [
        "mygrid",
        "--grid",
        "ordering=original,full_preact",
        "--seeds",
        "1",
        "--schedule",
        "smoke",
        "--set",
        "depth=8",
        "--set",
        "dataset=synthetic",
    ]
    first = _cli("sweep", *grid, cache_dir=cache_dir)
    assert first.returncode == 0, first.stderr
    assert "2 queued, 0 already known" in first.stdout and "2/2 finished" in first.stdout

    again = _cli("sweep", *grid, cache_dir=cache_dir)  # safe to re-run: nothing is retrained
    assert "0 queued, 2 already known" in again.stdout
    assert sorted(p.name.split(".")[1] for p in (cache_dir / "logs").glob("*.*.log")) == ["1", "1"]

    status = _cli("status", cache_dir=cache_dir)
    assert status.returncode == 0 and "2 runs, 0 queued or running" in status.stdout
    results = _cli("results", "mygrid", "--json", cache_dir=cache_dir)
    rows = json.loads(results.stdout)
    assert len(rows) == 2 and all(r["n"] == 1 and r["paper"] is None for r in rows)
    table = _cli("results", "mygrid", cache_dir=cache_dir).stdout
    assert "ResNet-8 full_preact" in table and "smoke" in table
    assert _cli("results", "nosuchsweep", cache_dir=cache_dir).returncode == 2
