"""The train loop: the paper's schedule, events, divergence, bad input, bit-exact resume, learning."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers import RunConfig
from trainers.engine.train import lr_at, train

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(dataset="synthetic", depth=8, batch_size=32, train_size=512, test_size=256)


def test_paper_schedule_warmup_and_milestones():
    c = RunConfig()
    assert lr_at(c, 0) == lr_at(c, 399) == 0.01  # warm-up at 0.01 for 400 iterations
    assert lr_at(c, 400) == lr_at(c, 31_999) == 0.1
    assert lr_at(c, 32_000) == pytest.approx(0.01) and lr_at(c, 47_999) == pytest.approx(0.01)
    assert lr_at(c, 48_000) == pytest.approx(0.001) and lr_at(c, 63_999) == pytest.approx(0.001)


def test_short_schedules_scale_the_milestones_and_cap_the_warmup():
    c = RunConfig(iterations=640)
    assert c.milestone_iterations() == (320, 480)
    assert lr_at(c, 0) == 0.01 and lr_at(c, 160) == 0.1 and lr_at(c, 319) == 0.1
    assert lr_at(c, 320) == pytest.approx(0.01) and lr_at(c, 480) == pytest.approx(0.001)
    short = RunConfig(iterations=100)  # first milestone at 50: warm-up capped at 25
    assert lr_at(short, 24) == 0.01 and lr_at(short, 25) == 0.1 and lr_at(short, 50) == pytest.approx(0.01)
    assert lr_at(RunConfig(iterations=100, warmup_iterations=10), 10) == 0.1


def test_the_engine_stores_done_and_fail_is_decided_where_shown(cache_dir, monkeypatch):
    """Issue #18, item 6: train() ends "done" (or diverged / cancelled) whatever its error; the
    paper's "fail" is read from the result by core.results.shown_status. Here a 6-iteration run is
    made to count as the paper's schedule, where its ~90 % error is the paper's "fail"."""
    from trainers.core import results

    monkeypatch.setattr(results, "is_paper_schedule", lambda cfg: True)
    cfg = RunConfig(**TINY, iterations=6, log_every=3, eval_every=6)
    result = train(cfg, device="cpu", cache_dir=cache_dir)
    assert result["test_error"] > results.FAIL_THRESHOLD
    assert result["status"] == "done" and results.shown_status(result) == "fail"
    saved = json.loads((cache_dir / "runs" / cfg.key / "result.json").read_text())
    assert saved["status"] == "done"


def test_the_authors_data_recipe_ghost_bn_and_the_kept_last_batch(cache_dir):
    """Issue #18: `last_batch: keep` makes an epoch of 80 images at batch 32 three updates (32, 32
    and the last 16, as fb.resnet.torch's loader), `bn_batch` splits the BN statistics, and both
    are recorded in the result's provenance; the default drops the 16 (two updates per epoch)."""
    kw = dict(TINY, train_size=80, iterations=6, log_every=3, eval_every=6)
    events: list = []
    keep = train(
        RunConfig(**kw, last_batch="keep", bn_batch=16), device="cpu", cache_dir=cache_dir, on_event=events.append
    )
    assert keep["status"] == "done" and keep["epochs"] == 2.0
    assert [e["epoch"] for e in events if e["type"] == "metrics"] == [1.0, 2.0]
    assert all(math.isfinite(e["train_loss"]) for e in events if e["type"] == "metrics")
    recipe = keep["provenance"]["recipe"]
    assert (recipe["last_batch"], recipe["bn_batch"]) == ("keep", 16)
    drop = train(RunConfig(**kw), device="cpu", cache_dir=cache_dir)
    drop_recipe = drop["provenance"]["recipe"]
    assert drop["epochs"] == 3.0 and (drop_recipe["last_batch"], drop_recipe["bn_batch"]) == ("drop", 32)


@pytest.mark.slow
def test_events_and_result(cache_dir):
    cfg = RunConfig(**TINY, iterations=12, log_every=4, eval_every=6)
    events = []
    result = train(cfg, device="cpu", cache_dir=cache_dir, on_event=events.append)
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "end"
    metrics = [e for e in events if e["type"] == "metrics"]
    evals = [e for e in events if e["type"] == "eval"]
    assert [m["iteration"] for m in metrics] == [4, 8, 12]
    assert [e["iteration"] for e in evals] == [6, 12]
    # 12 iterations: milestones scale to 6 and 9, the warm-up is capped at 3
    assert [m["lr"] for m in metrics] == pytest.approx([0.1, 0.01, 0.001])
    for m in metrics:
        assert m["images_per_s"] > 0 and 0 <= m["train_error"] <= 100 and m["epoch"] == m["iteration"] / 16
    json.dumps(events)  # every event is JSON
    assert result["key"] == cfg.key and result["iterations"] == 12
    assert result["test_error"] == evals[-1]["test_error"]
    assert result["status"] == "done"  # a 12-iteration run cannot "fail": that is the paper's 64k schedule
    prov = result["provenance"]
    assert prov["device"] == "cpu" and prov["precision"] == "fp32" and prov["torch"] == torch.__version__
    assert prov["code_version"] and prov["dataset"].startswith("synthetic")
    saved = json.loads((cache_dir / "runs" / cfg.key / "result.json").read_text())
    assert saved["curve"] == [e for e in events if e["type"] in ("metrics", "eval")]


@pytest.mark.slow
def test_a_diverging_run_stops_cleanly_and_keeps_its_curve(cache_dir):
    cfg = RunConfig(**TINY, iterations=200, log_every=2, eval_every=100, lr=1e8, warmup_lr=1e8)
    events = []
    result = train(cfg, device="cpu", cache_dir=cache_dir, on_event=events.append)
    assert result["status"] == "diverged"
    assert result["iterations"] < 200
    metrics = [e for e in events if e["type"] == "metrics"]
    assert metrics and metrics[-1]["iteration"] == result["iterations"]


def test_a_missing_dataset_fails_before_training(cache_dir, tmp_path):
    from trainers.engine.data import DataError

    cfg = RunConfig(**{**TINY, "dataset": f"folder:{tmp_path / 'nowhere'}"}, iterations=5)
    with pytest.raises(DataError):
        train(cfg, device="cpu", cache_dir=cache_dir)
    assert not (cache_dir / "runs" / cfg.key).exists()


def _final_params(cache_dir, cfg):
    state = torch.load(cache_dir / "runs" / cfg.key / "checkpoint.pt", weights_only=True)
    return state["model"], state["optimizer"]


@pytest.mark.slow
@pytest.mark.parametrize("shortcut", ["identity", "dropout"])  # dropout: the global RNG resumes too
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, shortcut):
    cfg = RunConfig(**TINY, shortcut=shortcut, iterations=24, log_every=4, eval_every=12)
    straight = tmp_path / "straight"
    train(cfg, device="cpu", cache_dir=straight)

    interrupted = tmp_path / "interrupted"
    seen = []

    def crash_after_checkpoint(ev):
        seen.append(ev)
        if ev["type"] == "checkpoint" and ev["iteration"] == 8:
            raise KeyboardInterrupt  # the process dies right after a checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(cfg, device="cpu", cache_dir=interrupted, on_event=crash_after_checkpoint, checkpoint_every_s=0)
    events = []
    result = train(cfg, device="cpu", cache_dir=interrupted, on_event=events.append)
    assert events[0]["resumed"] and events[0]["iteration"] == 8
    assert result["iterations"] == 24

    (m1, o1), (m2, o2) = _final_params(straight, cfg), _final_params(interrupted, cfg)
    assert m1.keys() == m2.keys()
    for k in m1:
        assert torch.equal(m1[k], m2[k]), k
    for s1, s2 in zip(o1["state"].values(), o2["state"].values()):
        assert torch.equal(s1["momentum_buffer"], s2["momentum_buffer"])
    curve = json.loads((interrupted / "runs" / cfg.key / "result.json").read_text())["curve"]
    assert [e["iteration"] for e in curve if e["type"] == "metrics"] == [4, 8, 12, 16, 20, 24]


@pytest.mark.slow
def test_should_stop_cancels_with_a_checkpoint_then_resumes(cache_dir):
    cfg = RunConfig(**TINY, iterations=16, log_every=4, eval_every=8)
    result = train(cfg, device="cpu", cache_dir=cache_dir, should_stop=lambda: True)
    assert result["status"] == "cancelled" and result["iterations"] == 4
    result = train(cfg, device="cpu", cache_dir=cache_dir)
    assert result["iterations"] == 16 and result["status"] in ("done", "fail")


@pytest.mark.slow
def test_cli_train_ends_with_one_json_line(cache_dir):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers",
            "train",
            "--dataset",
            "synthetic",
            "--depth",
            "8",
            "--iterations",
            "6",
            "--batch-size",
            "16",
            "--train-size",
            "128",
            "--test-size",
            "64",
            "--device",
            "cpu",
            "--cache-dir",
            str(cache_dir),
            "--threads",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["iterations"] == 6 and line["status"] in ("done", "fail") and len(line["key"]) == 16
    assert "test error" in out.stderr  # progress is shown


def test_cli_bad_value_is_a_message_not_a_traceback():
    out = subprocess.run(
        [sys.executable, "-m", "trainers", "describe", "--depth", "21"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "6n+2" in out.stderr and "Traceback" not in out.stderr


def test_cli_describe(cache_dir):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers",
            "describe",
            "--block",
            "bottleneck",
            "--depth",
            "164",
            "--ordering",
            "full_preact",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    d = json.loads(out.stdout)
    assert d["units"] == 54 and d["block"] == "bottleneck" and 1.6e6 < d["parameters"] < 1.8e6


@pytest.mark.slow
def test_short_run_on_the_shared_jpeg_copy_learns(shared_cifar_tarball, shared_cifar_cache):
    """ResNet-8 for 300 iterations on CIFAR-10 (JPEG copy): well below chance (90% error)."""
    cfg = RunConfig(
        dataset=f"folder:{shared_cifar_tarball}",
        depth=8,
        iterations=300,
        batch_size=64,
        test_size=2000,
        eval_every=300,
        log_every=50,
        ordering="full_preact",
    )
    result = train(cfg, device="cpu", cache_dir=shared_cifar_cache)
    assert result["provenance"]["dataset"] == "CIFAR-10 (JPEG copy)"
    assert result["test_error"] < 65.0, result["test_error"]


@pytest.mark.slow
def test_an_unreadable_checkpoint_is_kept_aside_and_the_run_starts_over(cache_dir):
    cfg = RunConfig(**TINY, iterations=4, log_every=2, eval_every=4)
    run_dir = cache_dir / "runs" / cfg.key
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"truncated by a full disk")
    events = []
    result = train(cfg, device="cpu", cache_dir=cache_dir, on_event=events.append)
    assert result["iterations"] == 4 and not events[0]["resumed"]
    assert "cannot be read" in events[0]["notes"][0]
    aside = list(run_dir.glob("checkpoint.unreadable-*.pt"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"truncated by a full disk"


# --- recipe options (issue #9, item 4) ---------------------------------------------------------


@pytest.mark.slow
def test_every_result_records_its_recipe(cache_dir):
    cfg = RunConfig(
        **TINY,
        iterations=2,
        shortcut="exclusive_gate",
        nesterov=True,
        gate_bias_decay=False,
        normalization="pixel_mean",
        crop_padding="mean",
        allow_tf32=False,
        deterministic=True,
    )
    result = train(cfg, device="cpu", cache_dir=cache_dir)
    rec = result["provenance"]["recipe"]
    assert (rec["nesterov"], rec["gate_bias_decay"], rec["normalization"], rec["crop_padding"]) == (
        True,
        False,
        "pixel_mean",
        "mean",
    )
    assert rec["tf32_convolutions"] is False and rec["cudnn_benchmark"] is False  # CPU: neither applies
    assert result["status"] in ("done", "fail") and result["test_error"] is not None
    default = train(RunConfig(**TINY, iterations=2), device="cpu", cache_dir=cache_dir)["provenance"]["recipe"]
    assert (default["nesterov"], default["normalization"], default["crop_padding"]) == (False, "channel", "zero")


def test_gate_biases_can_be_spared_from_weight_decay():
    from trainers import build_model
    from trainers.engine.fast import make_optimizer
    from trainers.engine.shortcuts import Gate

    cfg = RunConfig(depth=8, shortcut="shortcut_gate", gate_bias_decay=False, nesterov=True)
    model = build_model(cfg)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    gate_biases = {id(m.bias) for m in model.modules() if isinstance(m, Gate)}
    spared = [g for g in opt.param_groups if g["weight_decay"] == 0.0]
    assert len(spared) == 1 and {id(p) for p in spared[0]["params"]} == gate_biases
    assert all(g["nesterov"] for g in opt.param_groups)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    default = make_optimizer(
        build_model(RunConfig(depth=8, shortcut="shortcut_gate")), RunConfig(), torch.device("cpu")
    )
    assert len(default.param_groups) == 1 and default.param_groups[0]["weight_decay"] == 1e-4


def test_pixel_mean_normalisation_and_mean_colour_padding():
    from trainers.engine.augment import crop_flip, normalize
    from trainers.engine.recipe import input_stats

    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)

    class Data:
        train_x, mean, std = x, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    mean, std = input_stats(RunConfig(normalization="pixel_mean"), Data, torch.device("cpu"))
    assert mean.shape == (1, 3, 32, 32) and torch.all(std == 1)
    assert normalize(x, mean, std).mean(0).abs().max() < 1e-5  # the per-pixel mean is subtracted
    # "mean" padding = normalise first, pad with zeros: the border is exactly 0 (the mean colour)
    cmean, cstd = input_stats(RunConfig(), Data, torch.device("cpu"))
    zeros = torch.zeros(8, dtype=torch.long)
    padded = crop_flip(normalize(x, cmean, cstd), zeros, zeros, zeros.bool())  # top-left: 4 rows of padding
    assert torch.all(padded[:, :, :4] == 0)
    black = normalize(crop_flip(x, zeros, zeros, zeros.bool()), cmean, cstd)  # "zero": black pixels
    assert torch.allclose(black[:, :, :4], torch.tensor(-2.0))


@pytest.mark.slow
def test_checkpoint_error_in_eval_mode_on_training_images(cache_dir):
    from trainers.engine.train import checkpoint_error

    cfg = RunConfig(**TINY, iterations=4)
    train(cfg, device="cpu", cache_dir=cache_dir)
    r = checkpoint_error(cfg, images=100, device="cpu", cache_dir=cache_dir)
    assert r["images"] == 100 and r["iteration"] == 4 and 0 <= r["error"] <= 100 and r["mode"] == "eval"
