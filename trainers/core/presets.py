"""The paper's tables as data: every row is a RunConfig template plus the number the paper reports.

This is the only place a paper number lives (source: He et al. 2016, "Identity Mappings in Deep
Residual Networks", Tables 1-4, as transcribed in shared/paper.md). Every CIFAR number in the paper
is the median of 5 runs. Sweeps launch these rows; the UI and `results` find "the paper's number
for this run" with `paper_row(cfg)`, which compares the config without its seed and without
the schedule and measurement fields (a 300-iteration run of Table 2's row is still that row, run
short; the results table shows the schedule next to it).

Folder datasets: a `folder:` copy of CIFAR-10/100 (e.g. the JPEG tarball) matches the CIFAR rows
only when its name says cifar10/cifar100, and the returned row has `comparable=False`: JPEG
re-encoding changes the pixels, so the difference to the paper is indicative, not a reproduction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .config import RunConfig
from .registry import SHORTCUTS


@dataclass(frozen=True)
class PaperRow:
    table: str  # "Table 1", ...
    label: str  # as the paper's row reads
    template: dict[str, Any]  # RunConfig fields that differ from the defaults (the paper's protocol)
    reported: float | None  # test error %, None where the paper reports "fail"
    fails: bool = False  # the paper reports "fail" (> 20% test error after 64k iterations)
    remark: str = ""
    comparable: bool = True  # False: matched through a proxy dataset (JPEG copy), see module doc
    # Other templates the same reported number covers (e.g. exclusive gating fails for every
    # b_g in 0 ... -5; the sweep runs `template` only).
    covers: tuple[dict[str, Any], ...] = field(default=())

    def config(self, **overrides: Any) -> RunConfig:
        return RunConfig.from_dict({**self.template, **overrides})

    def paper_text(self) -> str:
        return "fail" if self.fails else f"{self.reported:.2f}"


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    rows: tuple[PaperRow, ...]


def _r110(**kw: Any) -> dict[str, Any]:
    return {"depth": 110, "block": "basic", "dataset": "cifar10", **kw}


def _r164(**kw: Any) -> dict[str, Any]:
    return {"depth": 164, "block": "bottleneck", "dataset": "cifar10", **kw}


def _r1001(**kw: Any) -> dict[str, Any]:
    return {"depth": 1001, "block": "bottleneck", "dataset": "cifar10", **kw}


T1 = "Table 1"
_TABLE1 = (
    PaperRow(T1, "original", _r110(), 6.61, remark="Fig. 2(a)"),
    PaperRow(
        T1,
        "constant scaling 0 / 1",
        _r110(shortcut="constant", shortcut_scale=0.0),
        None,
        True,
        "Fig. 2(b); a plain net: no shortcut at all",
    ),
    PaperRow(T1, "constant scaling 0.5 / 1", _r110(shortcut="constant", shortcut_scale=0.5), None, True, "Fig. 2(b)"),
    PaperRow(
        T1,
        "constant scaling 0.5 / 0.5",
        _r110(shortcut="constant", shortcut_scale=0.5, residual_scale=0.5),
        12.35,
        False,
        "Fig. 2(b); 'frozen gating'",
    ),
    PaperRow(
        T1,
        "exclusive gating, b_g = 0",
        _r110(shortcut="exclusive_gate", gate_bias=0.0),
        None,
        True,
        "Fig. 2(c); the paper: fails for every initial b_g in 0 ... -5",
        covers=tuple(_r110(shortcut="exclusive_gate", gate_bias=float(b)) for b in (-1, -2, -3, -4, -5)),
    ),
    PaperRow(
        T1,
        "exclusive gating, b_g = -6",
        _r110(shortcut="exclusive_gate", gate_bias=-6.0),
        8.70,
        False,
        "Fig. 2(c); best of a 0 ... -10 sweep",
    ),
    PaperRow(
        T1, "exclusive gating, b_g = -7", _r110(shortcut="exclusive_gate", gate_bias=-7.0), 9.81, False, "Fig. 2(c)"
    ),
    PaperRow(
        T1, "shortcut-only gating, b_g = 0", _r110(shortcut="shortcut_gate", gate_bias=0.0), 12.86, False, "Fig. 2(d)"
    ),
    PaperRow(
        T1, "shortcut-only gating, b_g = -6", _r110(shortcut="shortcut_gate", gate_bias=-6.0), 6.91, False, "Fig. 2(d)"
    ),
    PaperRow(T1, "1x1 conv shortcut", _r110(shortcut="conv1x1"), 12.22, False, "Fig. 2(e)"),
    PaperRow(T1, "dropout shortcut 0.5", _r110(shortcut="dropout", dropout_p=0.5), None, True, "Fig. 2(f)"),
)

T2 = "Table 2"
_ORDERINGS_T2 = (  # (ordering, paper's row name, ResNet-110, ResNet-164, figure)
    ("original", "original", 6.61, 5.93, "4(a)"),
    ("bn_after_add", "BN after addition", 8.17, 6.50, "4(b)"),
    ("relu_before_add", "ReLU before addition", 7.84, 6.14, "4(c)"),
    ("relu_only_preact", "ReLU-only pre-activation", 6.71, 5.91, "4(d)"),
    ("full_preact", "full pre-activation", 6.37, 5.46, "4(e)"),
)


def _table2() -> tuple[PaperRow, ...]:
    rows = []
    for depth, make, col in ((110, _r110, 0), (164, _r164, 1)):
        for ordering, name, e110, e164, fig in _ORDERINGS_T2:
            rows.append(
                PaperRow(
                    T2, f"{name}, ResNet-{depth}", make(ordering=ordering), (e110, e164)[col], remark=f"Fig. {fig}"
                )
            )
    return tuple(rows)


_TABLE2 = _table2()

T3 = "Table 3"
_TABLE3_C10 = (
    PaperRow(
        T3, "ResNet-110 (1-layer skip), original", _r110(block="single"), 9.90, False, "each shortcut skips one conv"
    ),
    PaperRow(
        T3,
        "ResNet-110 (1-layer skip), pre-activation",
        _r110(block="single", ordering="full_preact"),
        8.91,
        False,
        "each shortcut skips one conv",
    ),
    PaperRow(T3, "ResNet-110, original", _r110(), 6.61),
    PaperRow(T3, "ResNet-110, pre-activation", _r110(ordering="full_preact"), 6.37),
    PaperRow(T3, "ResNet-164, original", _r164(), 5.93),
    PaperRow(T3, "ResNet-164, pre-activation", _r164(ordering="full_preact"), 5.46),
    PaperRow(T3, "ResNet-1001, original", _r1001(), 7.61),
    PaperRow(
        T3, "ResNet-1001, pre-activation", _r1001(ordering="full_preact"), 4.92, remark="mean 4.89 ± 0.14 (Table 4)"
    ),
)
_TABLE3_C100 = (
    PaperRow(T3, "CIFAR-100 ResNet-164, original", _r164(dataset="cifar100"), 25.16),
    PaperRow(T3, "CIFAR-100 ResNet-164, pre-activation", _r164(dataset="cifar100", ordering="full_preact"), 24.33),
    PaperRow(T3, "CIFAR-100 ResNet-1001, original", _r1001(dataset="cifar100"), 27.82),
    PaperRow(
        T3,
        "CIFAR-100 ResNet-1001, pre-activation",
        _r1001(dataset="cifar100", ordering="full_preact"),
        22.71,
        remark="mean 22.68 ± 0.22 (Table 4)",
    ),
)
CIFAR_TRAIN_IMAGES = 50_000


def epoch_schedule(
    epochs: int,
    milestone_epochs: Iterable[int],
    batch_size: int,
    train_images: int = CIFAR_TRAIN_IMAGES,
    last_batch: str = "drop",
) -> dict[str, Any]:
    """A schedule given in epochs, as RunConfig fields: `iterations` = epochs × batches per epoch
    (full batches only, or with the last partial one for `last_batch="keep"`), `milestones` as
    fractions of the run. `milestone_epochs` count the epochs completed when the lr drops. The
    fractions land exactly on the epoch boundaries (round(m·iterations) = epoch·batches), and they
    keep scaling with the run like every other preset's, so "short"/"quick" still apply."""
    per_epoch = train_images // batch_size if last_batch == "drop" else -(-train_images // batch_size)
    out = {
        "iterations": epochs * per_epoch,
        "batch_size": batch_size,
        "milestones": tuple(e / epochs for e in milestone_epochs),
    }
    return out if last_batch == "drop" else {**out, "last_batch": last_batch}


# Table 4's batch-64 run is the authors' Torch code (KaimingHe/resnet-1k-layers README, on
# fb.resnet.torch): `-batchSize 64 -nGPU 2 -nEpochs 200`. fb.resnet.torch's train.lua counts epochs
# from 1 and divides lr 0.1 by 10 for epochs >= 81 and >= 122, i.e. after 80 and 121 epochs; its
# dataloader.lua keeps the last partial batch (ceil(50000/64) = 782 updates per epoch); its
# datasets/cifar10.lua normalises, then pads the crop with zeros (the mean colour); Nesterov
# momentum 0.9 (train.lua), no warm-up; 2 GPUs of 32 images each, each with its own BN
# (DataParallelTable). 200 × 782 = 156,400 iterations, lr /10 at 62,560 and 94,622. Not the
# paper's 64k-iteration Caffe recipe.
_TABLE4_RECIPE = {
    **epoch_schedule(200, (80, 121), batch_size=64, last_batch="keep"),
    "nesterov": True,
    "warmup_iterations": 0,
    "crop_padding": "mean",
    "bn_batch": 32,
}
_TABLE4 = (
    PaperRow(
        "Table 4",
        "ResNet-1001 pre-activation, mini-batch 64",
        _r1001(ordering="full_preact", **_TABLE4_RECIPE),
        4.62,
        remark="mean 4.69 ± 0.20; the authors' Torch recipe (fb.resnet.torch): 200 epochs at batch "
        "64 on 2 GPUs (BN over 32 images), lr /10 after epochs 80 and 121, the last partial "
        "batch kept, crops padded with the mean colour, Nesterov, no warm-up",
    ),
)


@dataclass(frozen=True)
class Table5Row:
    """A row of the paper that this project cannot train (yet): shown for reference only."""

    table: str
    label: str
    ordering: str | None  # registry name of the unit ordering; None for a net that is not a ResNet
    augmentation: str  # training augmentation, as the paper's table names it
    train_crop: int  # pixels, square
    test_crop: int  # pixels, square: the single crop the error is measured on
    top1: float  # error %
    top5: float
    remark: str = ""


NOT_TRAINED_HERE = "not trained here"
# Table 5: single-crop error on the ILSVRC 2012 validation set, top-1 / top-5 %, with the crop
# sizes of each row. The ResNets are trained as in the first ResNet paper (lr 0.1, /10 at epochs 30
# and 60, batch 256 on 8 GPUs; ResNet-200 took about 3 weeks); the pre-activation units are the
# full pre-activation ones (Fig. 4(e)). The scale + aspect-ratio row is the fb.resnet.torch model.
TABLE5_CAPTION = (
    "Table 5: single-crop error (%) on the ILSVRC 2012 validation set; the crop size is per row "
    "(training crop / test crop). The ResNets are trained with the same hyper-parameters and "
    "implementation as the first ResNet paper; pre-activation = full pre-activation units (Fig. 4(e)); "
    "scale + aspect ratio: fb.resnet.torch's augmentation (its released model)."
)
TABLE5 = (
    Table5Row("Table 5", "ResNet-152, original", "original", "scale", 224, 224, 23.0, 6.7),
    Table5Row("Table 5", "ResNet-152, original", "original", "scale", 224, 320, 21.3, 5.5),
    Table5Row("Table 5", "ResNet-152, pre-activation", "full_preact", "scale", 224, 320, 21.1, 5.5),
    Table5Row("Table 5", "ResNet-200, original", "original", "scale", 224, 320, 21.8, 6.0),
    Table5Row("Table 5", "ResNet-200, pre-activation", "full_preact", "scale", 224, 320, 20.7, 5.3),
    Table5Row(
        "Table 5",
        "ResNet-200, pre-activation",
        "full_preact",
        "scale + aspect ratio",
        224,
        320,
        20.1,
        4.8,
        remark="fb.resnet.torch's released model",
    ),
    Table5Row(
        "Table 5",
        "Inception v3",
        None,
        "scale + aspect ratio",
        299,
        299,
        21.2,
        5.6,
        remark="not a residual network: the paper's comparison",
    ),
)
TABLE5_NOTE = (
    TABLE5_CAPTION + " Shown as the paper's reference, not trained here: training it would need an "
    "ImageNet folder and a multi-GPU engine (ResNet-200 took the authors about 3 weeks on 8 GPUs), "
    "both out of scope for now."
)


def table5_rows() -> list[dict[str, Any]]:
    """Table 5's rows for display (Compare, Learn): the paper's numbers with each row's crop sizes,
    marked not trained here."""
    return [
        {
            "table": r.table,
            "network": r.label,
            "augmentation": r.augmentation,
            "train crop": f"{r.train_crop}×{r.train_crop}",
            "test crop": f"{r.test_crop}×{r.test_crop}",
            "top-1 error %": r.top1,
            "top-5 error %": r.top5,
            "status": NOT_TRAINED_HERE,
        }
        for r in TABLE5
    ]


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("table1", "Table 1: shortcut types, ResNet-110 on CIFAR-10", _TABLE1),
        Preset("table2", "Table 2: BN/ReLU orderings, ResNet-110 and ResNet-164 on CIFAR-10", _TABLE2),
        Preset("table3", "Table 3: original vs pre-activation units, CIFAR-10", _TABLE3_C10),
        Preset(
            "table3_all",
            "Table 3: original vs pre-activation units, CIFAR-10 and CIFAR-100",
            _TABLE3_C10 + _TABLE3_C100,
        ),
        Preset("table4", "Table 4 (selected): ResNet-1001 with mini-batch 64 (the authors' recipe)", _TABLE4),
    )
}

# Schedules change how long and how densely a run is trained and measured, never the method:
# the lr milestones stay fractions of the run (0.5, 0.75 = 32k and 48k of 64k).
SCHEDULES: dict[str, dict[str, Any]] = {
    "paper": {},  # 64k iterations, batch 128, full CIFAR (~164 epochs): hours per run on a GPU
    # Every schedule keeps the paper's lr 0.01 warm-up (all its CIFAR runs: 400 of 64k iterations),
    # scaled: 1/8 of it for `short`. Scaled that far down, `quick` would warm up for 2 iterations,
    # too few to get a deep net going (the paper's warm-up lasts until training error < 80%;
    # ResNet-110 at lr 0.1 from iteration 0 saw its loss spike 7.6 -> 19.4), so the short
    # schedules keep about a twelfth of the run at 0.01 (lr_at caps it at half the first milestone).
    "short": {"iterations": 8_000, "warmup_iterations": 50},  # 1/8 of the paper, ~20 epochs
    "quick": {"iterations": 300, "warmup_iterations": 25, "eval_every": 50, "test_size": 2_000},
    # A first CPU look (~20 min per ResNet-20 run on a heavily shared 2-core CPU). Departs from the
    # paper: no warm-up (ResNet-20 converges at lr 0.1 from the start in the first ResNet paper,
    # which warmed up ResNet-110 only). The CPU reference runs now train on `paper` (issue #17).
    "glance": {"iterations": 120, "warmup_iterations": 0, "eval_every": 20, "test_size": 2_000},
    "smoke": {
        "iterations": 20,
        "warmup_iterations": 2,
        "train_size": 512,
        "test_size": 256,
        "log_every": 2,
        "eval_every": 10,
    },
}
SCHEDULE_NOTES: dict[str, str] = {
    "paper": "the paper's protocol: 64k iterations (~164 epochs), lr /10 at 32k and 48k",
    "short": "8k iterations (~20 epochs), lr /10 at 4k and 6k: minutes on a GPU; errors far above the paper's "
    "(ResNet-20 ends near 16 % where the paper's 64k-iteration ResNet-110 reaches 6.6 %)",
    "quick": "300 iterations (the first 25 at the paper's warm-up lr 0.01), test on a fixed random sample of 2,000 images: a first look at the descent, not the paper's numbers",
    "glance": "120 iterations, no warm-up, test on a fixed random sample of 2,000 images: the first descent only",
    "smoke": "20 iterations on 512 images: checks that everything runs, numbers meaningless",
}

# Fields that say how long / how densely a run is trained and measured, not what is trained.
SCHEDULE_FIELDS = frozenset(
    {
        "seed",
        "iterations",
        "log_every",
        "eval_every",
        "warmup_iterations",
        "warmup_lr",
        "milestones",
        "train_size",
        "test_size",
        "precision",
        # numerics of the device, not the method: TF32 convolutions, cuDNN algorithm choice
        "allow_tf32",
        "deterministic",
    }
)


def preset_configs(
    name: str, seeds: int | Iterable[int] = 5, schedule: str = "paper", **overrides: Any
) -> list[RunConfig]:
    """The configs of a preset × seeds, seed-major (every row's seed 0 first, so a complete table
    with n=1 appears early). `seeds` is a count (0..N-1) or an explicit list of seeds."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    if schedule not in SCHEDULES:
        raise KeyError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    return [
        row.config(**{**SCHEDULES[schedule], **overrides, "seed": seed})  # the user's values win
        for seed in seed_list
        for row in PRESETS[name].rows
    ]


def _signature(cfg: RunConfig) -> dict[str, Any]:
    """What a run trains, without the seed, the schedule and parameters its shortcut ignores."""
    used = set(SHORTCUTS[cfg.shortcut].params)
    # shortcut_bn also touches projections and gate convs, so it always counts
    unused = {p for s in SHORTCUTS.values() for p in s.params} - used - {"shortcut_bn"}
    return {k: v for k, v in cfg.to_dict().items() if k not in SCHEDULE_FIELDS and k not in unused}


def _proxy_dataset(dataset: str) -> str | None:
    """The CIFAR set a folder dataset is a copy of, judged by its name (cifar10 / cifar-100 ...)."""
    if not dataset.startswith("folder:"):
        return None
    name = dataset.rsplit("/", 1)[-1].lower()
    m = re.search(r"cifar[-_]?(100|10)(?!\d)", name)
    return f"cifar{m.group(1)}" if m else None


def _signatures(rows: Iterable[PaperRow]) -> Iterable[tuple[dict[str, Any], PaperRow]]:
    for row in rows:
        for template in (row.template, *row.covers):
            yield _signature(RunConfig.from_dict(template)), row


def paper_row(cfg: RunConfig, rows: Iterable[PaperRow] | None = None) -> PaperRow | None:
    """The paper's row for this config (ignoring seed and schedule), or None if the paper has none.
    `rows` limits the search (e.g. to one preset); default: every table, in order."""
    if rows is None:
        rows = [r for p in PRESETS.values() for r in p.rows]
    proxy = _proxy_dataset(cfg.dataset)
    sig = _signature(cfg.replace(dataset=proxy) if proxy else cfg)
    for row_sig, row in _signatures(rows):
        if row_sig == sig:
            return replace(row, comparable=False) if proxy else row
    return None


def schedule_name(cfg: RunConfig) -> str:
    """Which SCHEDULES entry `cfg` was trained with, or a short description of its own schedule."""
    # The paper's schedule of the run's own row (Table 4's batch-64 row has the authors' recipe),
    # else the default one.
    row = paper_row(cfg)
    defaults = (RunConfig.from_dict(row.template) if row else RunConfig()).to_dict()
    d = cfg.to_dict()
    base = {
        k: (
            defaults[k] if k in SCHEDULE_FIELDS and k not in ("seed", "precision", "allow_tf32", "deterministic") else v
        )
        for k, v in d.items()
    }
    # How densely a run is logged and evaluated is not its schedule: a paper run logged every 20
    # iterations (the CPU campaign's curves) is still on the paper's schedule.
    density = ("log_every", "eval_every")
    mine = {k: v for k, v in d.items() if k not in density}
    for name, changes in SCHEDULES.items():
        theirs = RunConfig.from_dict({**base, **changes}).to_dict()
        if {k: v for k, v in theirs.items() if k not in density} == mine:
            return name
    sizes = (
        "" if not (cfg.train_size or cfg.test_size) else f", {cfg.train_size or 'all'}/{cfg.test_size or 'all'} images"
    )
    return f"{cfg.iterations:,} its{sizes}"
