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

from .errors import ConfigError
from .registry import BLOCKS, ORDERINGS, SHORTCUTS

# Bump when a field's meaning changes: old cache keys then stop matching instead of lying.
SCHEMA_VERSION = 1

DATASET_KINDS = ("cifar10", "cifar100", "synthetic")  # plus "folder:PATH"
PRECISIONS = ("fp32", "bf16")
DOWNSAMPLES = ("zeropad", "conv")
GATE_WIDTHS = ("channel", "single")
NORMALIZATIONS = ("channel", "pixel_mean")
CROP_PADDINGS = ("zero", "mean")
LAST_BATCHES = ("drop", "keep")


# Upper bounds (docs/limits.md): far above anything the paper trains (64k iterations,
# batch 128, depth 1202), low enough that a typo (iterations=1e12) is refused instead of becoming
# a run that never ends.
MAX_ITERATIONS = 1_000_000  # 15.6x the paper's 64k
MAX_BATCH_SIZE = 8_192
MAX_DEPTH = 2_000  # the paper's deepest: 1202 (basic), 1001 (bottleneck)
MAX_SAMPLES = 10_000_000  # train_size, test_size
MAX_SEED = 2**63 - 1  # torch seeds are 64-bit
MAX_TEXT = 4_096  # characters of a string field (a folder dataset's path)


# Accepted ranges of the shortcut parameters (the explorer's fields read them from here). Table 1
# uses λ and the factor on F in {0, 0.5, 1} and b_g from 0 down to -10. A negative λ flips the
# signal, and |b_g| beyond 20 saturates the gate's sigmoid in float32: such runs answer no question
# of the paper, so they are refused rather than trained.
PARAM_BOUNDS: dict[str, tuple[float, float]] = {
    "shortcut_scale": (0.0, 2.0),
    "residual_scale": (0.0, 2.0),
    "gate_bias": (-20.0, 20.0),
}


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
    # BN right after every 1x1 conv on the shortcut path (projection, conv1x1 shortcut, gate conv).
    # "auto" follows the paper per ordering, resolved at construction so the key names what runs:
    # - original-family orderings (original, BN after addition, ReLU before addition): True. Fig. 2's
    #   caption: BN "right after the weight layers" in all of Table 1's units, the 1x1 shortcut conv
    #   and the gate convs included; the first ResNet paper's projections (and fb.resnet.torch's
    #   shortcut type B) have BN too.
    # - pre-activation orderings: False. The authors' resnet-pre-act.lua projection is a bare 1x1
    #   conv reading the shared pre-activation (its output joins the un-normalised stream); the
    #   paper tests no gate or 1x1 shortcut in pre-activation units, so they follow the projection.
    # - no conv on the shortcut path at all (identity/zero-pad, no gate): False, whatever was asked
    #   (there is nothing to normalise, and two configs that train the same net share one key).
    # true/false override "auto" where a shortcut conv exists.
    shortcut_bn: bool | str = "auto"
    # --- the data ----------------------------------------------------------------------------
    dataset: str = "cifar10"  # cifar10 | cifar100 | synthetic | folder:PATH
    augment: bool = True  # pad 4 + random 32x32 crop + horizontal flip (paper)
    train_size: int = 0  # 0 = the whole training set; >0 = a fixed random sample of N (quick runs, tests)
    test_size: int = 0  # 0 = the whole test set; >0 = a fixed random sample of N (the same for every run)
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
    # SGD momentum flavour. False: plain momentum, as the paper's Caffe runs (first ResNet paper).
    # The authors' Torch code (fb.resnet.torch, used for Table 4's batch-64 run) uses Nesterov.
    nesterov: bool = False
    precision: str = "fp32"  # fp32 | bf16 (autocast); recorded with every result
    seed: int = 0
    # --- recipe choices the paper is silent on (docs/fidelity.md; recorded in every result) -----
    # Weight decay on the gate biases b_g. True: decay every parameter, as fb.resnet.torch does
    # (and Caffe by default). Note: 1e-4 decay pulls b_g = -6 toward 0 over 64k iterations.
    gate_bias_decay: bool = True
    # Input normalisation. "channel": per-channel mean and std of the training images, as
    # fb.resnet.torch's CIFAR loader; "pixel_mean": the first ResNet paper's per-pixel mean image
    # subtracted (0-1 scale, no division).
    normalization: str = "channel"
    # What the 4 pixels of crop padding hold. "zero": black pixels, padded before normalisation
    # (the papers' "padded with zeros" read on the image, as torchvision and most reproductions);
    # "mean": zero after normalisation, i.e. the mean colour, as fb.resnet.torch (it normalises, then
    # pads). The default keeps every stored run's key; the GPU check can compare the two.
    crop_padding: str = "zero"
    # BN statistics in training over groups of this many images of each batch ("ghost batches"),
    # 0 = over the whole batch. The paper trained on 2 GPUs, each BN seeing its GPU's half of the
    # batch of 128 (64 images); the authors' Torch code (-nGPU 2, fb.resnet.torch's
    # DataParallelTable) likewise, e.g. 32 images for Table 4's batch of 64. The running statistics
    # (evaluation) follow the first group, as the first GPU's replica, the one saved, does there.
    bn_batch: int = 0
    # The last partial batch of each epoch. "drop": every batch is full (50,000 images at batch 128:
    # 390 batches, a different 80 images left out each epoch; the paper's Caffe also trained on
    # full batches only). "keep": as fb.resnet.torch's data loader, the epoch ends with the
    # remainder (at batch 64: 782 updates per epoch, the last of 16 images).
    last_batch: str = "drop"
    # TF32 for fp32 convolutions on NVIDIA GPUs (Ampere+): True = PyTorch's default for cuDNN
    # (10-bit mantissa inside the convolutions; faster); False = strict fp32. No effect on the CPU.
    # The result's provenance records whether it was actually on.
    allow_tf32: bool = True
    # cuDNN: False = autotuned algorithms (cudnn.benchmark, fastest, not bitwise reproducible);
    # True = deterministic algorithms (torch.backends.cudnn.deterministic). No effect on the CPU.
    deterministic: bool = False
    # --- what gets measured (part of the key: a run's curve depends on it) --------------------
    log_every: int = 0  # iterations between training metrics; 0 = auto (~200 points per run)
    eval_every: int = 0  # iterations between test evaluations; 0 = auto (~32 per run, paper: 2k)

    def __post_init__(self) -> None:
        _coerce_types(self)
        _validate(self)
        # What was asked for each automatic field, before it is resolved: `replace` starts from it,
        # so an explicit choice survives a change of what "auto" depends on (not part of the key).
        object.__setattr__(self, "_asked", {k: getattr(self, k) for k in _AUTO_VALUE})
        # Resolve "auto" values so the key names what actually runs.
        if self.downsample == "auto":
            object.__setattr__(self, "downsample", BLOCKS[self.block].default_downsample)
        object.__setattr__(self, "shortcut_bn", _resolve_shortcut_bn(self))
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
        # Fields added after runs were stored are left out at their default (which is the behaviour
        # those runs had): old keys stay valid without a schema bump, and a non-default value gives
        # a new key. Only a change of meaning bumps SCHEMA_VERSION.
        d = {k: v for k, v in self.to_dict().items() if not (k in _OMITTED_AT_DEFAULT and v == _DEFAULTS[k])}
        return json.dumps({"schema": SCHEMA_VERSION, **d}, sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        """The run's identity: cache record, checkpoint folder, URL."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object of fields, got {type(d).__name__}")
        d = dict(d)
        schema = d.pop("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ConfigError(f"config schema {schema} is not this code's schema {SCHEMA_VERSION}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ConfigError("config JSON must be an object")
        return cls.from_dict(d)

    def replace(self, **changes: Any) -> RunConfig:
        """This config with `changes`. Automatic fields start from what was asked for them: "auto"
        (or 0) is resolved again for the new config (a changed block, ordering or iterations
        re-resolves it), an explicit value is kept (`--set shortcut_bn=false` stays false across a
        grid over shortcuts, even from a base whose net had no shortcut conv to use it on). A config
        read from a dict asked for the values the dict holds."""
        d = self.to_dict()
        d.update(getattr(self, "_asked", {}))  # set in __post_init__ (not a field: not in the key)
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


# The fields resolved at construction ("auto", or 0 for the measurement intervals) and what they
# depend on: downsample on the block; shortcut_bn on the ordering, shortcut, block and downsample;
# log_every / eval_every on the iterations.
_AUTO_VALUE = {"downsample": "auto", "shortcut_bn": "auto", "log_every": 0, "eval_every": 0}

# Shortcut types that bring a 1x1 conv of their own (the gate's W_g, or h(x) itself).
SHORTCUT_CONV_TYPES = ("exclusive_gate", "shortcut_gate", "conv1x1")


def has_shortcut_conv(c: RunConfig) -> bool:
    """Whether the net has any 1x1 conv on a shortcut path (projection, gate, 1x1 shortcut)."""
    return c.shortcut in SHORTCUT_CONV_TYPES or c.downsample == "conv"


def _resolve_shortcut_bn(c: RunConfig) -> bool:
    if not has_shortcut_conv(c):
        return False
    if c.shortcut_bn == "auto":
        return not ORDERINGS[c.ordering].preact_net  # see the field's comment
    return bool(c.shortcut_bn)


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
        elif want == "bool | str":  # true, false or "auto"
            if not (isinstance(v, bool) or v == "auto"):
                raise ConfigError(f"{f.name} must be true, false or \"auto\", got {v!r}")
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


def _in_range(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo:,} and {hi:,}, got {value:,}")


def _validate(c: RunConfig) -> None:
    for f in fields(c):
        v = getattr(c, f.name)
        if isinstance(v, str) and len(v) > MAX_TEXT:
            raise ConfigError(f"{f.name} is longer than {MAX_TEXT} characters")
    _one_of("ordering", c.ordering, list(ORDERINGS))
    _one_of("shortcut", c.shortcut, list(SHORTCUTS))
    _one_of("block", c.block, list(BLOCKS))
    _one_of("downsample", c.downsample, ("auto", *DOWNSAMPLES))
    _one_of("gate_width", c.gate_width, GATE_WIDTHS)
    _one_of("precision", c.precision, PRECISIONS)
    _one_of("normalization", c.normalization, NORMALIZATIONS)
    _one_of("crop_padding", c.crop_padding, CROP_PADDINGS)
    _one_of("last_batch", c.last_batch, LAST_BATCHES)
    if not (c.dataset in DATASET_KINDS or (c.dataset.startswith("folder:") and len(c.dataset) > 7)):
        raise ConfigError(f"unknown dataset {c.dataset!r}; choose cifar10, cifar100, synthetic or folder:PATH")
    b = BLOCKS[c.block]
    L = b.layers_per_unit
    if c.depth < L * 3 + 2 or (c.depth - 2) % (3 * L) != 0:
        ok = ", ".join(str(3 * L * n + 2) for n in (1, 2, 3, 18))
        raise ConfigError(f"depth {c.depth} does not fit {c.block} units: depth must be {3 * L}n+2 (e.g. {ok}, ...)")
    _in_range("iterations", c.iterations, 1, MAX_ITERATIONS)
    _in_range("batch_size", c.batch_size, 1, MAX_BATCH_SIZE)
    if c.depth > MAX_DEPTH:
        raise ConfigError(f"depth must be <= {MAX_DEPTH}, got {c.depth}")
    for name in ("train_size", "test_size"):
        _in_range(name, getattr(c, name), 0, MAX_SAMPLES)
    for name in ("warmup_iterations", "log_every", "eval_every"):
        _in_range(name, getattr(c, name), 0, MAX_ITERATIONS)
    _in_range("seed", c.seed, 0, MAX_SEED)
    _in_range("bn_batch", c.bn_batch, 0, MAX_BATCH_SIZE)
    if c.bn_batch and (c.bn_batch >= c.batch_size or c.batch_size % c.bn_batch):
        raise ConfigError(
            f"bn_batch must split batch_size {c.batch_size} into equal groups of 2 or more, "
            f"got {c.bn_batch}; 0 = BN statistics over the whole batch"
        )
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
        raise ConfigError(f"milestones are increasing fractions of the run in (0, 1), got {list(c.milestones)}")
    for name, (lo, hi) in PARAM_BOUNDS.items():
        if not lo <= getattr(c, name) <= hi:
            raise ConfigError(f"{name} must be between {lo:g} and {hi:g}, got {getattr(c, name):g}")
    if not 0 <= c.dropout_p < 1:
        raise ConfigError(f"dropout_p must be in [0, 1), got {c.dropout_p}")


CONFIG_FIELDS: tuple[dataclasses.Field, ...] = fields(RunConfig)
_DEFAULTS = {f.name: f.default for f in CONFIG_FIELDS}
# Added with issue #9 (recipe options) and issue #18 (bn_batch, last_batch); see canonical_json.
_OMITTED_AT_DEFAULT = frozenset(
    {
        "nesterov",
        "gate_bias_decay",
        "normalization",
        "crop_padding",
        "allow_tf32",
        "deterministic",
        "bn_batch",
        "last_batch",
    }
)
