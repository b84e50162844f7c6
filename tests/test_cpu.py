"""The CPU path's process settings (trainers/engine/cpu.py): a training loop's activations stop
page-faulting once the allocator keeps freed memory. Each case runs in a fresh interpreter, since
the setting is process-wide and cannot be undone."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# An iteration's activations in miniature: 4 buffers of 64 MB allocated, then all freed, 10 times.
# (64 MB: above the largest threshold glibc's own adaptive setting reaches, 32 MB, so by default
# every one is a fresh mmap, page-faulted in anew; the smaller buffers of a real iteration fault
# as much whenever the heap top gets trimmed, which depends on what else the process allocated.)
LOOP = """
import resource, sys, torch
from trainers.engine.cpu import keep_freed_memory
if sys.argv[1] == "tuned":
    print(keep_freed_memory(), file=sys.stderr)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    buffers = [torch.ones(16 << 20) for _ in range(4)]; del buffers
before = faults()
for _ in range(10):
    buffers = [torch.ones(16 << 20) for _ in range(4)]; del buffers
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", LOOP, mode], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_kept_memory_ends_the_page_faults_of_a_training_loop():
    default, tuned = _faults("default"), _faults("tuned")
    # 10 x 256 MB faulted in page by page (4 KiB pages: 64k faults per round) unless memory is kept
    assert default > 10 * 4 * 16384 * 0.9
    assert tuned < default / 5  # 0 here, now and then one round (a new heap region), never all ten


def test_the_setting_says_what_it_did_and_is_idempotent():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trainers.engine.cpu import keep_freed_memory as k; a = k(); print(a); print(k() is a)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    note, again = out.stdout.strip().splitlines()
    assert again == "True"
    assert note == (
        "glibc malloc keeps freed memory (mallopt)"
        if sys.platform.startswith("linux")
        else f"allocator unchanged ({sys.platform})"
    )
