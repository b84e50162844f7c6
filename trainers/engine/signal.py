"""Signal propagation at initialisation: the paper's argument (Sec. 3, Eq. 3-5), measured.

With identity shortcuts and an identity after the addition, `x_L = x_l + Σ F(x_i)` and the gradient
`∂E/∂x_l = ∂E/∂x_L · (1 + ∂/∂x_l Σ F)` reaches every shallow unit undamped. Any multiplicative
shortcut `h(x) = λ x` turns that `1` into `Π λ_i`, which vanishes (λ < 1) or explodes (λ > 1)
with depth. `signal_propagation` measures, for a freshly initialised network, the RMS of every
unit's input on the way forward and of the loss gradient with respect to it on the way back;
`shortcut_product` gives the factor the pure shortcut path applies, unit by unit.

Torch only (engine side): the UI draws the returned plain dicts.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from ..core.config import RunConfig
from ..core.registry import SHORTCUTS
from .model import build_model, unit_specs


def _rms(t: torch.Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


def signal_propagation(cfg: RunConfig, *, batch: int = 16, seed: int = 0) -> dict:
    """Forward activation RMS and backward gradient RMS at the input of every residual unit.

    The network is built from `cfg` with weights drawn under `seed`, in training mode (BN uses
    batch statistics, as in the first iterations of training) and fed `batch` images of unit
    Gaussian noise with random labels; the loss is the mean cross-entropy. The global torch RNG is
    left as it was. Index `i` of each list is unit `i`'s input (`i = units` is the last unit's
    output, i.e. what the classifier head reads after the pre-act nets' final BN→ReLU).
    """
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg)
        gen = torch.Generator().manual_seed(seed + 1)
        x = torch.randn(batch, 3, 32, 32, generator=gen)
        y = torch.randint(0, cfg.num_classes, (batch,), generator=gen)
        model.train()

        seen: list[torch.Tensor] = []  # unit inputs, then the last unit's output
        gates: list[float | None] = []

        def keep(t: torch.Tensor) -> None:
            t.retain_grad()
            seen.append(t)

        def before_unit(module, args):
            keep(args[0])

        def gate_hook(module, args, out):
            gates.append(float(out.detach().mean()))

        handles = [u.register_forward_pre_hook(before_unit) for u in model.units]
        handles.append(model.units[-1].register_forward_hook(lambda m, a, out: keep(out)))
        unit_gates = []
        for u in model.units:
            gate = getattr(u.merge, "gate", None)
            unit_gates.append(gate is not None)
            if gate is not None:
                handles.append(gate.register_forward_hook(gate_hook))
        try:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
        finally:
            for h in handles:
                h.remove()

    activation = [_rms(t) for t in seen]
    gradient = [_rms(t.grad) if t.grad is not None else 0.0 for t in seen]
    gate_iter = iter(gates)
    gate_mean = [next(gate_iter) if has else None for has in unit_gates]
    specs = unit_specs(cfg)
    return {
        "key": cfg.key,
        "label": cfg.label(),
        "depth": cfg.depth,
        "units": len(specs),
        "stage": [s.stage for s in specs] + [specs[-1].stage],
        "activation_rms": activation,
        "gradient_rms": gradient,
        # gradient at each unit's input relative to the gradient at the last unit's output:
        # 1 everywhere = the signal reaches shallow units undamped
        "gradient_ratio": [g / gradient[-1] if gradient[-1] > 0 else math.nan for g in gradient],
        "gate_mean": gate_mean,  # mean g(x) of each unit's gate (gated shortcuts), else None
        "loss": float(loss.detach()),
        "batch": batch,
        "seed": seed,
        "seconds": time.perf_counter() - started,
    }


def shortcut_factor(cfg: RunConfig) -> float | None:
    """The scalar the shortcut path of one unit multiplies its signal by, at initialisation
    (the registry's `Shortcut.factor`: identity 1, constant λ, dropout its expectation, gates
    1 - g with g as training starts: E[sigmoid(z + b_g)], z ~ N(0, 1), with the gate conv's BN in
    training mode, sigmoid(b_g) without it (`registry.mean_gate`); None for a 1x1 conv, a matrix
    rather than a scalar)."""
    return SHORTCUTS[cfg.shortcut].factor(cfg)


def shortcut_product(cfg: RunConfig) -> dict:
    """Π λ over the units: the factor of the pure shortcut path from unit l to the output.

    `to_output[l]` = Π_{i >= l} λ_i (paper Eq. 5: the gradient term that bypasses every F);
    `product` = the whole network's Π λ, `to_output[0]`. Zero-padded identity shortcuts keep their
    existing channels unchanged (factor 1 there, before the shortcut type's own λ).
    """
    n = len(unit_specs(cfg))
    lam = shortcut_factor(cfg)
    if lam is None:
        return {
            "key": cfg.key,
            "label": cfg.label(),
            "units": n,
            "factor": None,
            "to_output": None,
            "product": None,
            "note": "a 1x1 conv shortcut is a learned matrix, not a scalar: no Π λ",
        }
    to_output = [lam ** (n - i) for i in range(n)] + [1.0]
    return {
        "key": cfg.key,
        "label": cfg.label(),
        "units": n,
        "factor": lam,
        "to_output": to_output,
        "product": to_output[0],
        "note": "",
    }
