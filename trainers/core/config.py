"""One run = one frozen, typed config. Its canonical JSON is the run's identity everywhere.

Defaults are the paper's CIFAR protocol (He et al. 2016, appendix, and the first ResNet paper):
SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 with a 0.01 warm-up for 400 iterations,
lr /10 at 32k and 48k iterations, stop at 64k.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any

from .registry import BLOCKS, ORDERINGS, SHORTCUTS

# Bump when a field's meaning changes: old cache keys then stop matching instead of lying.
SCHEMA_VERSION = 1

DATASET_KINDS = ("cifar10", "cifar100", "synthetic")  # plus "folder:PATH"
PRECISIONS = ("fp32", "bf16")
DOWNSAMPLES = ("zeropad", "conv")
GATE_WIDTHS = ("channel", "single")


# Accepted ranges of the shortcut parameters (the explorer's fields read them from here). Table 1
# uses λ and the factor on F in {0, 0.5, 1} and b_g from 0 down to -10. A negative λ flips the
# signal, and |b_g| beyond 20 saturates the gate's sigmoid in float32: such runs answer no question
# of the paper, so they are refused rather than trained.
PARAM_BOUNDS: dict[str, tuple[float, float]] = {
    "shortcut_scale": (0.0, 2.0),
    "residual_scale": (0.0, 2.0),
    "gate_bias": (-20.0, 20.0),
}


class ConfigError(ValueError):
    """A config value that cannot describe a run. The message says which field and why."""


@dataclass(frozen=True)
class RunConfig:
    # --- the network -------------------------------------------------------------------------
    ordering: str = "original"  # where BN/ReLU sit (paper Fig. 4); see trainers.core.registry.ORDERINGS
    shortcut: str = "identity"  # what the shortcut does (paper Fig. 2); see SHORTCUTS
    block: str = "basic"  # basic (two 3x3), bottleneck (1x1-3x3-1x1), single (one 3x3, Table 3)
    depth: int = 110  # 6n+2 basic, 9n+2 bottleneck, 3n+2 single
    # "auto" = the paper-faithful choice for the block: zero-padded identity ("option A") for
    # basic/single CIFAR nets (first ResNet paper), 1x1 projection for bottlenecks (authors' code).
    downsample: str = "auto"
    shortcut_scale: float = 1.0  # λ on the shortcut, `constant` only (Table 1: 0, 0.5)
    residual_scale: float = 1.0  # scale on F, `constant` only (Table 1: 1, 0.5)
    gate_bias: float = -6.0  # b_g, initial gate bias of the two gating shortcuts (Table 1 best: -6)
    # OPEN in the paper: "channel" = one gate per output channel and pixel (element-wise, our
    # reading of g(x) = sigmoid(W_g x + b_g) with a 1x1 conv); "single" = one gate map per pixel.
    gate_width: str = "channel"
    dropout_p: float = 0.5  # ratio of the dropout shortcut (Table 1: 0.5)
    # The paper reasons about the dropout shortcut as a scale with expectation 1-p, so by default
    # no 1/(1-p) rescaling in training, and eval multiplies by 1-p. True = standard inverted dropout.
    dropout_rescale: bool = False
    # OPEN: a BN after every 1x1 conv on the shortcut path (projection, conv1x1 shortcut, gate
    # conv). The authors' resnet-pre-act.lua has none, so neither do we by default.
    shortcut_bn: bool = False
    # --- the data ----------------------------------------------------------------------------
    dataset: str = "cifar10"  # cifar10 | cifar100 | synthetic | folder:PATH
    augment: bool = True  # pad 4 + random 32x32 crop + horizontal flip (paper)
    train_size: int = 0  # 0 = the whole training set; >0 = the first N (quick runs, tests)
    test_size: int = 0  # 0 = the whole test set; >0 = the first N
    # --- the optimisation --------------------------------------------------------------------
    iterations: int = 64_000
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iterations: int = 400  # at warmup_lr (paper: all CIFAR runs); capped at 1st milestone / 2
    warmup_lr: float = 0.01
    # lr /10 at these fractions of `iterations`: 32k/64k and 48k/64k, so short runs scale them.
    milestones: tuple[float, ...] = (0.5, 0.75)
    precision: str = "fp32"  # fp32 | bf16 (autocast); recorded with every result
    seed: int = 0
    # --- what gets measured (part of the key: a run's curve depends on it) --------------------
    log_every: int = 0  # iterations between training metrics; 0 = auto (~200 points per run)
    eval_every: int = 0  # iterations between test evaluations; 0 = auto (~32 per run, paper: 2k)

    def __post_init__(self) -> None:
        _coerce_types(self)
        _validate(self)
        # Resolve "auto" values so the key names what actually runs.
        if self.downsample == "auto":
            object.__setattr__(self, "downsample", BLOCKS[self.block].default_downsample)
        if self.log_every == 0:
            object.__setattr__(self, "log_every", max(1, self.iterations // 200))
        if self.eval_every == 0:
            object.__setattr__(self, "eval_every", max(1, self.iterations // 32))

    # --- identity ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    def canonical_json(self) -> str:
        return json.dumps({"schema": SCHEMA_VERSION, **self.to_dict()}, sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        """The run's identity: cache record, checkpoint folder, URL."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        d = dict(d)
        schema = d.pop("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ConfigError(f"config schema {schema} is not this code's schema {SCHEMA_VERSION}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ConfigError("config JSON must be an object")
        return cls.from_dict(d)

    def replace(self, **changes: Any) -> "RunConfig":
        d = self.to_dict()
        for k in ("downsample", "log_every", "eval_every"):
            # a changed depth/block/iterations must re-resolve the automatic values
            if k not in changes and any(c in changes for c in _AUTO_DEPENDS[k]):
                d[k] = "auto" if k == "downsample" else 0
        d.update(changes)
        return RunConfig(**d)

    # --- derived -----------------------------------------------------------------------------
    @property
    def units_per_stage(self) -> int:
        return (self.depth - 2) // (3 * BLOCKS[self.block].layers_per_unit)

    @property
    def num_classes(self) -> int:
        return 100 if self.dataset == "cifar100" else 10  # folder: datasets are checked at load

    @property
    def is_preact(self) -> bool:
        return ORDERINGS[self.ordering].preact_net

    def milestone_iterations(self) -> tuple[int, ...]:
        return tuple(int(round(m * self.iterations)) for m in self.milestones)

    def label(self) -> str:
        """Short human name, e.g. 'ResNet-110 full_preact / identity'."""
        return f"ResNet-{self.depth} {self.ordering} / {SHORTCUTS[self.shortcut].describe(self)}"


_AUTO_DEPENDS = {
    "downsample": ("block",),
    "log_every": ("iterations",),
    "eval_every": ("iterations",),
}


def _coerce_types(c: RunConfig) -> None:
    """Accept what JSON and the CLI give (ints for floats, lists for tuples); refuse the rest."""
    for f in fields(c):
        v = getattr(c, f.name)
        want = f.type
        if want == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{f.name} must be a number, got {v!r}")
            if not math.isfinite(float(v)):
                raise ConfigError(f"{f.name} must be finite, got {v!r}")
            object.__setattr__(c, f.name, float(v))
        elif want == "int":
            if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
                raise ConfigError(f"{f.name} must be an integer, got {v!r}")
            object.__setattr__(c, f.name, int(v))
        elif want == "bool":
            if not isinstance(v, bool):
                raise ConfigError(f"{f.name} must be true or false, got {v!r}")
        elif want == "str":
            if not isinstance(v, str):
                raise ConfigError(f"{f.name} must be a string, got {v!r}")
        elif want.startswith("tuple"):
            if not isinstance(v, (list, tuple)) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v
            ):
                raise ConfigError(f"{f.name} must be a list of numbers, got {v!r}")
            object.__setattr__(c, f.name, tuple(float(x) for x in v))


def _one_of(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def _validate(c: RunConfig) -> None:
    _one_of("ordering", c.ordering, list(ORDERINGS))
    _one_of("shortcut", c.shortcut, list(SHORTCUTS))
    _one_of("block", c.block, list(BLOCKS))
    _one_of("downsample", c.downsample, ("auto", *DOWNSAMPLES))
    _one_of("gate_width", c.gate_width, GATE_WIDTHS)
    _one_of("precision", c.precision, PRECISIONS)
    if not (c.dataset in DATASET_KINDS or (c.dataset.startswith("folder:") and len(c.dataset) > 7)):
        raise ConfigError(
            f"unknown dataset {c.dataset!r}; choose cifar10, cifar100, synthetic or folder:PATH"
        )
    b = BLOCKS[c.block]
    L = b.layers_per_unit
    if c.depth < L * 3 + 2 or (c.depth - 2) % (3 * L) != 0:
        ok = ", ".join(str(3 * L * n + 2) for n in (1, 2, 3, 18))
        raise ConfigError(
            f"depth {c.depth} does not fit {c.block} units: depth must be {3 * L}n+2 "
            f"(e.g. {ok}, ...)"
        )
    if c.iterations < 1:
        raise ConfigError(f"iterations must be >= 1, got {c.iterations}")
    if c.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {c.batch_size}")
    if c.lr <= 0:
        raise ConfigError(f"lr must be > 0, got {c.lr}")
    if c.warmup_lr <= 0:
        raise ConfigError(f"warmup_lr must be > 0, got {c.warmup_lr}")
    if not 0 <= c.momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {c.momentum}")
    if c.weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {c.weight_decay}")
    if c.warmup_iterations < 0:
        raise ConfigError(f"warmup_iterations must be >= 0, got {c.warmup_iterations}")
    if any(not 0 < m < 1 for m in c.milestones) or list(c.milestones) != sorted(c.milestones):
        raise ConfigError(
            f"milestones are increasing fractions of the run in (0, 1), got {list(c.milestones)}"
        )
    for name, (lo, hi) in PARAM_BOUNDS.items():
        if not lo <= getattr(c, name) <= hi:
            raise ConfigError(f"{name} must be between {lo:g} and {hi:g}, got {getattr(c, name):g}")
    if not 0 <= c.dropout_p < 1:
        raise ConfigError(f"dropout_p must be in [0, 1), got {c.dropout_p}")
    for name in ("train_size", "test_size", "log_every", "eval_every", "seed"):
        if getattr(c, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(c, name)}")


CONFIG_FIELDS: tuple[dataclasses.Field, ...] = fields(RunConfig)
