"""`python -m trainers bench`: both pipelines run and the report ends with one JSON line.
Structure and positivity only: speed targets are measured, not asserted (docs/benchmarks.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers import RunConfig
from trainers.engine.bench import TorchvisionStyleCIFAR, conventional_transform, synthetic_cifar

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_cli_prints_both_throughputs_and_the_ratio_last():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers",
            "bench",
            "--depth",
            "8",
            "--batch-size",
            "16",
            "--steps",
            "2",
            "--warmup-steps",
            "1",
            "--rounds",
            "1",
            "--workers",
            "1",
            "--train-images",
            "256",
            "--packs",
            "2",
            "--device",
            "cpu",
            "--threads",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    r = json.loads(lines[-1])
    assert "conventional" in out.stdout and "this trainer" in out.stdout and "ratio" in out.stdout
    for side in ("ours", "conventional"):
        assert r[side]["images_per_s"] > 0 and r[side]["paper_run_h"] > 0
    assert r["ratio"] == r["ours"]["images_per_s"] / r["conventional"]["images_per_s"] > 0
    assert r["ours"]["warmup_s"] >= 0 and r["ours"]["mode"] == "eager"  # CPU: no graphs
    assert r["device"] == "cpu" and r["torch"] == torch.__version__ and r["ours"]["precision"] == "fp32"
    assert r["depth"] == 8 and r["batch_size"] == 16 and r["conventional"]["workers"] == 1
    assert r["packed"]["packs"] == 2 and r["packed"]["aggregate_images_per_s"] > 0
    assert r["packed"]["speedup_vs_sequential"] > 0


def test_conventional_dataset_is_torchvision_style():
    x, y = synthetic_cifar(8)
    ds = TorchvisionStyleCIFAR(x, y, conventional_transform())
    img, label = ds[3]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32 and label == int(y[3])
    assert ds.data.shape == (8, 32, 32, 3)  # HWC uint8, as torchvision.datasets.CIFAR10 stores it
    assert RunConfig().batch_size == 128  # the paper's batch, which the bench uses by default


def test_step_modes_resolve_per_device():
    from trainers.engine.fast import resolve_mode

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_mode(None, cpu) == "eager" and resolve_mode(None, cuda) == "graph"  # auto
    assert resolve_mode(True, cpu) == "compile" and resolve_mode(True, cuda) == "compile+graph"
    assert resolve_mode(False, cuda) == "eager"
    with pytest.raises(ValueError):
        resolve_mode("graph", cpu)  # CUDA graphs need CUDA


@pytest.mark.slow
def test_the_estimates_speed_is_the_trainers_own_step():
    """The Design page's estimate (engine_api.bench_speed) times `bench`'s step (`Ours`), here."""
    from trainers.engine.bench import step_speed

    r = step_speed(RunConfig(depth=8, batch_size=8), device="cpu", steps=1)
    assert r["images_per_s"] > 0 and r["batch"] == 8 and r["mode"] == "eager" and "own step" in r["basis"]
