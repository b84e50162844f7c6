"""The CPU path's process settings: what a training process on the CPU sets once for itself.

Why the allocator: one iteration of these nets allocates and frees ~100 activation buffers of
1-8 MB (ResNet-110: ~1 GB in all). glibc's malloc gives large blocks back to the kernel on free
(mmap'd blocks, and a trimmed heap top), so the next iteration page-faults every page in again:
on the 2-core EPYC of docs/benchmarks.md that was ~700k minor faults for 78 ResNet-20 iterations
and 5-10 % of the wall time, spent in the kernel. Keeping freed memory in the process (no mmap
below 1 GiB, no trimming below 1 GiB) makes the faults go away; it is the effect Intel's PyTorch
CPU tuning guide gets by preloading jemalloc/tcmalloc, here with glibc's own `mallopt`, at run time,
with nothing to install. The cost: a training process keeps its peak working set until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
import sys

# glibc <malloc.h>
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
KEEP_BELOW = 1 << 30  # blocks under 1 GiB come from the heap and stay there once freed
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps rather than page by page


@functools.cache  # once per process
def keep_freed_memory() -> str:
    """Tune glibc's malloc for a training loop (see module doc). Idempotent; returns what it did
    (recorded by callers), or why it did nothing (not Linux/glibc: macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return f"allocator unchanged ({sys.platform})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "allocator unchanged (no glibc mallopt)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(
        mallopt(param, value) == 1
        for param, value in ((M_MMAP_THRESHOLD, KEEP_BELOW), (M_TRIM_THRESHOLD, KEEP_BELOW), (M_TOP_PAD, TOP_PAD))
    )
    return "glibc malloc keeps freed memory (mallopt)" if ok else "allocator partly unchanged (mallopt refused)"


def cpu_model() -> str:
    """The CPU's model name as the machine reports it (/proc/cpuinfo on Linux), never typed by hand."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
