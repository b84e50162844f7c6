"""Shared fixtures. Tests must pass on a fresh clone with no ../shared beside it: anything that
needs the shared CIFAR-10 JPEG copy asks for `shared_cifar_tarball` and is skipped without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

# Two cores: keep torch from oversubscribing them when pytest and workers run side by side.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    d = tmp_path / "cache"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def shared_cifar_tarball() -> Path:
    if not SHARED_TARBALL.exists():
        pytest.skip("../shared/data/cifar10-jpeg.tar.gz is not beside this checkout")
    return SHARED_TARBALL


@pytest.fixture(scope="session")
def shared_cifar_cache(shared_cifar_tarball, tmp_path_factory) -> Path:
    """A cache dir in which the shared JPEG copy is already decoded (once per test session)."""
    from trainers.engine.data import load_dataset

    d = tmp_path_factory.mktemp("shared-cifar-cache")
    load_dataset(f"folder:{shared_cifar_tarball}", d)
    return d


@pytest.fixture(scope="session")
def reference_pack_file(tmp_path_factory) -> Path:
    """A real reference pack (the generator, two 4-iteration ResNet-8 runs on synthetic data:
    original and full pre-activation), made once per test session."""
    from trainers.core.reference_packs import plan_configs
    from trainers.engine.reference_generator import generate

    d = tmp_path_factory.mktemp("reference")
    cfgs = plan_configs(2, "smoke", depth=8, dataset="synthetic", iterations=4, log_every=1, eval_every=2)
    out = d / "pack" / "test-pack.json"
    out.parent.mkdir()
    generate(cfgs, out, device="cpu", cache_dir=d / "cache")
    return out


@pytest.fixture(scope="session")
def campaign_pack_file(tmp_path_factory) -> Path:
    """A real campaign pack (issue #17's plan on the paper's schedule, as the CPU campaign trains it,
    on a tiny net and data): the pilot's four runs (identity twice, constant scaling, full
    pre-activation), each stopped after 4 of its 64,000 iterations. Made once per test session."""
    from trainers.core.reference_packs import plan_configs
    from trainers.engine.reference_generator import generate

    d = tmp_path_factory.mktemp("campaign")
    cfgs = plan_configs(4, "paper", plan="campaign110", depth=8, dataset="synthetic", log_every=1, eval_every=2)
    out = d / "pack" / "campaign.json"
    out.parent.mkdir()
    generate(cfgs, out, device="cpu", cache_dir=d / "cache", until=4, resume_dir=d / "resume")
    return out
