"""The engine runs where only torch and torchvision are installed (a bare GPU machine): with the UI
and job-system packages hidden, every engine module imports and the CLI trains and benchmarks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains, or starts workers and a supervisor

ROOT = Path(__file__).resolve().parents[1]
UI_AND_JOBS = ("streamlit", "plotly", "diskcache", "pandas", "ray")
ENGINE = (
    "trainers",
    "trainers.engine.train",
    "trainers.engine.pack_state",
    "trainers.engine.fast",
    "trainers.engine.bench",
    "trainers.cli",
    "trainers.engine.data",
    "trainers.engine.signal",
    "trainers.core.presets",
    "trainers.engine.checkpoint",
    "trainers.engine.cpu",
)


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    hidden = tmp_path / "hidden"
    for name in UI_AND_JOBS:  # importing any of them now fails as if it were not installed
        (hidden / name).mkdir(parents=True, exist_ok=True)
        (hidden / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}' (hidden by the test)\", name={name!r})\n"
        )
    env = {**os.environ, "PYTHONPATH": str(hidden)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_engine_imports_and_trains_without_ui_packages(tmp_path):
    probe = _run(
        tmp_path,
        "-c",
        "import importlib, sys\n"
        f"for m in {ENGINE!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in {UI_AND_JOBS!r} if m in sys.modules))",
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().splitlines()[-1] == "[]"

    out = _run(
        tmp_path,
        "-m",
        "trainers",
        "train",
        "--dataset",
        "synthetic",
        "--depth",
        "8",
        "--iterations",
        "4",
        "--batch-size",
        "16",
        "--train-size",
        "64",
        "--test-size",
        "32",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["iterations"] == 4 and 0 <= result["test_error"] <= 100


def test_hidden_packages_really_are_hidden(tmp_path):
    out = _run(tmp_path, "-c", "import diskcache")
    assert out.returncode != 0 and "hidden by the test" in out.stderr
