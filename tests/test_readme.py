"""The README's Python example runs as written (issue #9, item 2: it once bound the module
`trainers.train` instead of the function). The block is extracted and executed with the three
substitutions the README states next to it: a tiny synthetic config, the CPU, a temporary cache."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains, or starts workers and a supervisor

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = (
    'depth=8, dataset="synthetic", iterations=2, train_size=64, test_size=32, batch_size=32, '
    'warmup_iterations=0, seed=0'
)


def python_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "the README has one Python block; this test runs it"
    return blocks[0]


def substituted(block: str, cache_dir: Path) -> str:
    out, n_cfg = re.subn(r"RunConfig\([^)]*\)", f"RunConfig({TINY})", block)
    out, n_dev = re.subn(r'device="[^"]*"', 'device="cpu"', out)
    out, n_cache = re.subn(r'cache_dir="[^"]*"', f"cache_dir={str(cache_dir)!r}", out)
    assert (n_cfg, n_dev, n_cache) == (1, 1, 1), "the README block changed shape: update this test"
    return out


def test_readme_python_block_runs(tmp_path, capsys):
    namespace: dict = {}
    exec(compile(substituted(python_block(), tmp_path), str(README), "exec"), namespace)
    result = namespace["result"]
    assert callable(namespace["train"]) and result["iterations"] == 2
    assert result["status"] in ("done", "fail") and result["test_error"] is not None
    assert "'type': 'end'" in capsys.readouterr().out  # on_event=print saw the run end
