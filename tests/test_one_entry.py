"""A new shortcut type is one registry entry plus its merge module: every consumer reads the
registry's traits (Π λ factor, drawn as factor or layer, gate, stochastic), none asks for a name."""

from __future__ import annotations

import torch

from trainers.core.config import RunConfig
from trainers.core.pack_rules import why_not_packable
from trainers.core.registry import SHORTCUTS, Shortcut
from trainers.engine import shortcuts
from trainers.engine.model import build_model
from trainers.engine.signal import shortcut_product


def test_a_new_shortcut_type_needs_only_its_entry_and_its_merge(monkeypatch):
    from explorer import diagrams

    monkeypatch.setitem(
        SHORTCUTS,
        "halved",
        Shortcut(
            "halved", "halved shortcut", "2(g)", "½", "1", (), False, describe=lambda c: "halved", factor=lambda c: 0.5
        ),
    )
    monkeypatch.setitem(
        shortcuts.MERGES, "halved", lambda c, cin, cout, stride, packs: shortcuts.ConstantScaling(0.5, 1.0)
    )
    cfg = RunConfig(depth=8, shortcut="halved")
    assert build_model(cfg)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    product = shortcut_product(cfg)
    assert product["factor"] == 0.5 and product["product"] == 0.5 ** product["units"]
    assert "× ½" in diagrams.unit_dot(cfg) and "halved" in diagrams.shortcut_diagrams()
    assert why_not_packable([cfg, cfg.replace(seed=1)]) is None
    monkeypatch.setitem(
        SHORTCUTS,
        "halved",
        Shortcut(
            "halved",
            "halved shortcut",
            "2(g)",
            "½",
            "1",
            (),
            False,
            describe=lambda c: "halved",
            factor=lambda c: 0.5,
            stochastic=True,
        ),
    )
    assert "global RNG" in why_not_packable([cfg, cfg.replace(seed=1)])
