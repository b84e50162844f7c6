"""Signal propagation at initialisation (trainers.engine.signal): shapes, determinism, the paper's Π λ."""

import math

import pytest
import torch

from trainers.core.config import RunConfig
from trainers.engine.signal import shortcut_factor, shortcut_product, signal_propagation


def test_one_value_per_unit_input_plus_the_output():
    cfg = RunConfig(depth=8)  # 3 basic units
    r = signal_propagation(cfg, batch=4, seed=0)
    assert r["units"] == 3
    assert len(r["activation_rms"]) == len(r["gradient_rms"]) == len(r["gradient_ratio"]) == 4
    assert all(math.isfinite(v) and v > 0 for v in r["activation_rms"] + r["gradient_rms"])
    assert r["gradient_ratio"][-1] == pytest.approx(1.0)
    assert r["gate_mean"] == [None, None, None]


def test_deterministic_and_leaves_the_global_rng_alone():
    cfg = RunConfig(depth=8, ordering="full_preact")
    state = torch.get_rng_state()
    a = signal_propagation(cfg, batch=4, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    b = signal_propagation(cfg, batch=4, seed=3)
    assert a["activation_rms"] == b["activation_rms"] and a["gradient_rms"] == b["gradient_rms"]


def test_gates_start_near_sigmoid_of_their_bias():
    cfg = RunConfig(depth=8, shortcut="exclusive_gate", gate_bias=-6.0)
    r = signal_propagation(cfg, batch=4)
    assert all(g is not None and g < 0.05 for g in r["gate_mean"])


def test_shortcut_product_is_lambda_to_the_number_of_units():
    cfg = RunConfig(depth=14, shortcut="constant", shortcut_scale=0.5)  # 6 units
    p = shortcut_product(cfg)
    assert p["units"] == 6 and p["product"] == pytest.approx(0.5**6)
    assert p["to_output"][-1] == 1.0 and p["to_output"][0] == p["product"]
    assert shortcut_product(RunConfig(depth=14))["product"] == 1.0
    assert shortcut_product(RunConfig(depth=14, shortcut="conv1x1"))["product"] is None
    assert shortcut_factor(RunConfig(depth=8, shortcut="dropout", dropout_p=0.5)) == 0.5
    assert shortcut_factor(RunConfig(depth=8, shortcut="shortcut_gate", gate_bias=0.0)) == pytest.approx(0.5)


def test_the_gate_product_is_drawn_in_training_mode_as_the_net_measures_it():
    """Issue #18, item 4: with the gate conv's BN in training mode the gate starts at
    E[sigmoid(z + b_g)], not sigmoid(b_g): Π (1 − g) over ResNet-110 at b_g = −6 is 0.80, not 0.87."""
    bn = shortcut_product(RunConfig(depth=110, shortcut="exclusive_gate", gate_bias=-6.0))
    assert bn["units"] == 54 and round(bn["product"], 2) == 0.80
    no_bn = shortcut_product(RunConfig(depth=110, shortcut="exclusive_gate", gate_bias=-6.0, shortcut_bn=False))
    assert round(no_bn["product"], 2) == 0.87  # sigmoid(b_g): the gate at W_g x = 0
    # the drawn factor is what a freshly initialised net's gates average in training mode
    cfg = RunConfig(depth=20, shortcut="shortcut_gate", gate_bias=-6.0)
    gates = [g for g in signal_propagation(cfg, batch=16)["gate_mean"] if g is not None]
    measured = sum(gates) / len(gates)
    assert measured == pytest.approx(1 - shortcut_factor(cfg), rel=0.15)
    assert abs(measured - 0.00247) > abs(measured - 0.00404)  # nearer E[σ(z − 6)] than σ(−6)


def test_vanishing_shortcut_path_leaves_only_the_residual_paths():
    # λ = 0.5 over 54 units of ResNet-110: the identity term of Eq. 5 is gone (5.6e-17), so the
    # gradient has to cross every F; with identity shortcuts the ratio stays within a few orders.
    ident = signal_propagation(RunConfig(depth=20), batch=4)
    half = signal_propagation(RunConfig(depth=20, shortcut="constant", shortcut_scale=0.5), batch=4)
    assert half["gradient_ratio"][0] > ident["gradient_ratio"][0]
