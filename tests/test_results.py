"""One results module: the CLI's `results`, the UI's Compare table and the CSV show the same numbers,
and "fail" appears only where the paper's word applies (its full schedule)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.core.config import RunConfig
from trainers.core.presets import PRESETS, SCHEDULES
from trainers.core.results import error_text, final_status, result_rows, run_error, seed_stats, shown_status
from trainers.runs import Store

ROOT = Path(__file__).resolve().parents[1]
ROW = next(r for r in PRESETS["table2"].rows if r.label == "original, ResNet-110")  # paper: 6.61


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


def test_fail_is_the_papers_word_for_its_full_schedule():
    paper, quick = ROW.config(), ROW.config(**SCHEDULES["quick"])
    assert final_status(paper, 54.0) == "fail" and final_status(paper, 6.0) == "done"
    assert final_status(paper, None) == "fail"
    assert final_status(quick, 54.0) == "done"  # 300 iterations at 54 %: not a failure
    assert error_text(54.0, paper_schedule=True) == "fail (54.0)"
    assert error_text(54.0, paper_schedule=False) == "54.00"
    assert error_text(math.inf, paper_schedule=True) == "diverged" and error_text(None, False) == "–"
    # a short run stored as "fail" by an older engine reads "done"; a paper-schedule one stays "fail"
    assert shown_status({"status": "fail", "config": quick.to_dict()}) == "done"
    assert shown_status({"status": "fail", "config": paper.to_dict()}) == "fail"


def test_one_status_rule_where_runs_are_shown_for_new_and_old_records():
    """Issue #18, item 6: the engine stores "done"; "fail" is decided here, once, from the schedule
    and the error, for records of today's engine and for the "fail" older engines stored."""
    paper, quick = ROW.config(), ROW.config(**SCHEDULES["quick"])

    def rec(status, cfg, err):
        return {"status": status, "config": cfg.to_dict(), "result": {"test_error": err}}

    assert shown_status(rec("done", paper, 35.0)) == "fail"  # today's engine: done, shown as fail
    assert shown_status(rec("done", paper, None)) == "fail"  # no number after 64k iterations
    assert shown_status(rec("done", paper, 6.0)) == "done"
    assert shown_status(rec("done", quick, 54.0)) == "done"
    assert shown_status(rec("fail", paper, 35.0)) == "fail"  # older engines, the same rule
    assert shown_status(rec("fail", quick, 54.0)) == "done"
    assert shown_status({"status": "done", "config": paper.to_dict(), "test_error": 35.0}) == "fail"  # a result
    for status in ("queued", "running", "diverged", "cancelled", "error"):
        assert shown_status(rec(status, paper, 35.0)) == status
    rows = result_rows([{**rec("done", paper, 35.0), "key": "a"}, {**rec("fail", paper, 40.0), "key": "b"}])
    assert rows[0]["statuses"] == {"fail": 2} and rows[0]["ours"] == "fail (37.5)"


def test_seed_stats_count_a_diverged_run_as_inf():
    recs = [
        {"status": "done", "result": {"test_error": 7.6}},
        {"status": "diverged", "result": None},
        {"status": "running"},
        {"status": "cancelled", "result": {"test_error": 50.0}},
    ]
    errors = [run_error(r) for r in recs]
    assert errors == [7.6, math.inf, None, None]
    s = seed_stats(errors)
    assert (s.n, s.median, s.min, s.max, s.diverged) == (2, math.inf, 7.6, math.inf, 1)
    assert seed_stats([None]).median is None


def test_cli_ui_and_csv_show_the_same_numbers_for_two_seeds_one_diverged(cache_dir, tmp_path):
    """The issue's case: the CLI said "fail", the UI "7.60 (+1.23 vs paper)". Now both say the
    median of 7.60 and a diverged run is "diverged" (min 7.60, max diverged, no difference)."""
    from explorer import figures
    from explorer.pages_common import paper_row_for

    quick = dict(SCHEDULES["quick"])
    cfgs = [ROW.config(**quick, seed=s) for s in (0, 1)]
    store = Store(cache_dir)
    _finished(store, cfgs[0], "done", 7.60)
    _finished(store, cfgs[1], "diverged", None)
    store.save_sweep("pair", [c.key for c in cfgs])
    records = store.list_runs()
    store.close()

    env = {**os.environ, "TRAINERS_GPUS": ""}
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers",
            "results",
            "pair",
            "--json",
            "--csv",
            str(tmp_path / "t.csv"),
            "--cache-dir",
            str(cache_dir),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    (c,) = json.loads(cli.stdout)
    (u,) = figures.results_table(records, paper_row=paper_row_for).to_dict("records")
    (f,) = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    shown = figures.display_table(figures.results_table(records, paper_row=paper_row_for)).iloc[0]

    assert c["n"] == u["n"] == int(f["n"]) == 2
    # strict JSON and CSV (docs/limits.md): a non-finite number is null / an empty cell; "ours" says why
    assert u["median"] == math.inf and c["median"] is None and f["median"] == ""
    assert c["min"] == u["min"] == float(f["min"]) == 7.60
    assert u["max"] == math.inf and c["max"] is None and f["max"] == ""
    assert c["ours"] == u["ours"] == f["ours"] == "diverged"
    assert c["paper"] == 6.61 and u["paper"] == "6.61" and float(f["paper"]) == 6.61
    assert c["difference"] is None and math.isnan(u["difference"]) and f["difference"] == ""
    assert "1 of 2 diverged" in u["note"] and u["note"] == f["note"]
    assert (shown["min"], shown["max"], shown["difference"]) == ("7.60", "diverged", "")
    assert result_rows(records)[0]["median"] == math.inf  # the module itself, no reference given


@pytest.mark.parametrize("status", ["done", "fail"])
def test_a_short_run_is_a_number_everywhere(cache_dir, status):
    """Issue #9 item 7: a 300-iteration run at 54 % shows 54.00 beside its schedule (also when an
    older engine stored it as "fail"), in the CLI and the UI table alike."""
    from explorer import figures
    from explorer.pages_common import paper_row_for
    from trainers.runs.sweeps import format_table

    cfg = ROW.config(**SCHEDULES["quick"])
    store = Store(cache_dir)
    _finished(store, cfg, status, 54.0)
    records = store.list_runs()
    (row,) = result_rows(records)
    assert row["ours"] == "54.00" and row["schedule"] == "quick" and row["statuses"] == {"done": 1}
    assert "fail" not in format_table([row])
    ui = figures.results_table(records, paper_row=paper_row_for).iloc[0]
    assert ui["ours"] == "54.00" and "300 iterations; paper: 64k" in ui["note"]
