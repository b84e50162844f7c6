"""The layers import only downward, with no import circles, and the job layer never loads torch.

    explorer/          the UI: the core directly; the job layer only through explorer/runs_api.py,
                       the engine only through explorer/engine_api.py (lazily)
    trainers/runs/     the job layer: the core; the engine only inside a worker process
    trainers/engine/   torch: the core
    trainers/core/     torch-free: nothing above it, no torch

Every import is read from the source (ast), the lazy ones inside functions too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The job layer's one way into the engine, lazily, in a worker process or a Ray task (their shared wiring).
WORKER_ENTRY = {"trainers/runs/attempt.py"}
RUNS_DOOR = "explorer/runs_api.py"  # the UI's verbs on runs
ENGINE_DOOR = "explorer/engine_api.py"  # the engine functions the UI shows, imported when called
HEAVY = ("torch", "torchvision", "streamlit", "plotly", "pandas", "diskcache", "ray")


def module_name(rel: str) -> str:
    parts = rel[:-3].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(rel: str, source: str) -> list[tuple[str, bool]]:
    """(absolute module, at module level?) for every import in `source` (file `rel`)."""
    package = module_name(rel).split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    tree = ast.parse(source)
    top = {id(n) for n in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` / `try:` blocks at module level count as top level
        if isinstance(node, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # from . import x: x may be a module
                out += [(f"{name}.{a.name}", id(node) in top) for a in node.names]
            else:
                out.append((name, id(node) in top))
    return out


def layer(module: str) -> str | None:
    for prefix in ("trainers.core", "trainers.engine", "trainers.runs"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.split(".")[1]
    if module == "trainers" or module.startswith("trainers."):
        return "top"  # trainers/__init__, cli, __main__
    if module == "explorer" or module.startswith("explorer."):
        return "ui"
    if module == "app":
        return "app"
    return None


def violations(rel: str, source: str) -> list[str]:
    """What `rel` imports against the layering, in words (empty: all downward)."""
    here = layer(module_name(rel))
    bad = []
    for target, at_top in imports(rel, source):
        there = layer(target)
        root = target.split(".")[0]
        why = None
        if here == "core":
            if there not in (None, "core"):
                why = "the core imports nothing above it"
            elif root in HEAVY:
                why = "the core is torch-free (and UI-free)"
        elif here == "engine":
            if there not in (None, "core", "engine"):
                why = "the engine imports the core only"
            elif root in ("streamlit", "plotly", "diskcache", "ray"):
                why = "the engine runs on a bare GPU machine (torch only)"
        elif here == "runs":
            if there == "engine":
                if rel not in WORKER_ENTRY:
                    why = "the job layer reaches the engine only in its worker entry points"
                elif at_top:
                    why = "a worker entry point imports the engine lazily (after its first heartbeat)"
            elif there not in (None, "core", "runs") and target != "trainers":  # the package: its path
                why = "the job layer imports the core and itself"
            elif root in ("torch", "torchvision", "streamlit", "plotly") and not (rel in WORKER_ENTRY and not at_top):
                why = "the job layer never loads torch or the UI"
        elif here == "ui":
            if there == "runs" and rel != RUNS_DOOR:
                why = f"the UI reaches the job layer only through {RUNS_DOOR}"
            elif there == "engine" and rel != ENGINE_DOOR:
                why = f"the UI reaches the engine only through {ENGINE_DOOR}"
            elif there == "engine" and at_top:
                why = f"{ENGINE_DOOR} imports the engine when called: a page's import loads no torch"
            elif there == "top":
                why = "the UI imports the core and its two doors, not the trainers package's entry points"
        elif here == "app":
            if there not in (None, "ui"):
                why = "app.py routes to explorer pages only"
        if why:
            bad.append(f"{rel} imports {target}: {why}")
    return bad


def sources() -> list[str]:
    files = [p for d in ("trainers", "explorer") for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]
    return sorted(str(p.relative_to(ROOT)) for p in files)


def test_every_module_imports_only_downward():
    found = [v for rel in sources() for v in violations(rel, (ROOT / rel).read_text())]
    assert not found, "\n".join(found)
    assert len(sources()) > 60  # the walk saw the whole project


def test_the_check_catches_upward_and_sideways_imports():
    cases = {
        ("trainers/core/results.py", "from trainers.runs.store import Store"): "nothing above it",
        ("trainers/core/results.py", "import torch"): "torch-free",
        ("trainers/engine/train.py", "from ..runs import store"): "core only",
        ("trainers/runs/sweeps.py", "def f():\n    from trainers.engine.train import train"): "worker entry",
        ("trainers/runs/attempt.py", "from trainers.engine.train import train"): "lazily",
        ("trainers/runs/worker.py", "def f():\n    from trainers.engine.train import train"): "worker entry",
        ("explorer/figures.py", "from trainers.runs.store import Store"): "runs_api",
        ("explorer/pages/system.py", "def f():\n    from trainers.engine.data import dataset_info"): "engine_api",
        ("explorer/runs_api.py", "def f():\n    from trainers.engine.bench import step_speed"): "engine_api",
        ("explorer/engine_api.py", "from trainers.engine.data import dataset_info"): "when called",
        ("explorer/plan.py", "from trainers import RunConfig"): "entry points",
    }
    for (rel, source), why in cases.items():
        found = violations(rel, source)
        assert found and why in found[0], (rel, source, found)
    # and what is allowed passes
    assert not violations("trainers/runs/attempt.py", "def f():\n    from trainers.engine.train import train")
    assert not violations("trainers/engine/train.py", "from ..core.results import final_status")
    assert not violations("explorer/figures.py", "from trainers.core.results import result_rows")
    assert not violations("explorer/engine_api.py", "def f():\n    from trainers.engine.data import dataset_info")


def test_the_job_layer_and_its_cli_verbs_load_no_torch(tmp_path):
    """In a fresh interpreter: import the job layer, run `status`, `results`, `export` on a store
    with finished runs, and let the supervisor plan a pack for a GPU slot; torch stays unloaded."""
    script = textwrap.dedent(f"""
        import json, sys
        import trainers.runs
        from trainers.runs import Store, submit
        from trainers.runs import export, jobs, settings, store, supervisor, sweeps, verbs
        from trainers.runs.backends import local
        from trainers.core.config import RunConfig
        from trainers.cli import main

        cache = {str(tmp_path / "cache")!r}
        s = Store(cache)
        cfgs = [RunConfig(depth=8, dataset="synthetic", iterations=20, seed=k) for k in range(2)]
        for c in cfgs:
            s.create(c.to_dict(), c.label(), c.key)
        a = s.claim(cfgs[0].key, "local", "cpu0")
        s.finish(cfgs[0].key, a, {{"key": cfgs[0].key, "status": "done", "test_error": 50.0,
                                   "iterations": 20, "config": cfgs[0].to_dict()}})
        s.save_sweep("mine", [c.key for c in cfgs])
        codes = [main(["status", "--cache-dir", cache]), main(["results", "mine", "--cache-dir", cache]),
                 main(["export", {str(tmp_path / "runs.csv")!r}, "--cache-dir", cache])]
        sup = supervisor.Supervisor(cache, settings.load_settings(cache, gpus="", pack_seeds="auto"))
        recs = sup.store.active()
        group = sup.pack_group(recs[0], recs, local.Slot("gpu0", "0", "cuda"))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")
                        or m.startswith("trainers.engine"))
        print(json.dumps({{"codes": codes, "loaded": loaded, "group": len(group)}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 0]
    assert report["loaded"] == []
    assert report["group"] == 1  # one queued run: nothing to pack with, decided without the engine


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (lazy imports too; `from pkg import mod`
    counts as importing `pkg.mod`)."""
    mods = {module_name(rel): rel for rel in sources()}
    graph: dict[str, set[str]] = {}
    for mod, rel in mods.items():
        targets: set[str] = set()
        package = mod.split(".") if rel.endswith("__init__.py") else mod.split(".")[:-1]
        for node in ast.walk(ast.parse((ROOT / rel).read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1] if node.level else [])
                base = ".".join(p for p in (base, node.module or "") if p)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in mods:  # `trainers.core.x.y` (an attribute) -> trainers.core.x
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    targets.add(name)
        graph[mod] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    """Not even through a lazy import (explorer/runs_api.py <-> explorer/app_settings.py was one)."""
    graph = import_graph()
    assert not cycles(graph), cycles(graph)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check sees one
