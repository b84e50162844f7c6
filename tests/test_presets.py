"""The paper's tables as data: every row builds, is found again, and carries the paper's number."""

from __future__ import annotations

import pytest

from trainers.core.config import RunConfig
from trainers.core.presets import PRESETS, SCHEDULES, paper_row, preset_configs, schedule_name


def test_every_row_is_a_valid_config_found_by_paper_row():
    for preset in PRESETS.values():
        for row in preset.rows:
            cfg = row.config()
            ref = paper_row(cfg, preset.rows)
            assert ref is row, (preset.name, row.label)
            expected = "fail" if row.fails else row.reported
            assert paper_row(cfg).paper_text() == (expected if row.fails else f"{expected:.2f}")


@pytest.mark.parametrize("preset, rows", [("table1", 11), ("table2", 10), ("table3", 8), ("table3_all", 12)])
def test_preset_sizes(preset, rows):
    assert len(PRESETS[preset].rows) == rows


def test_paper_numbers_spot_check():
    r164 = dict(depth=164, block="bottleneck")
    assert paper_row(RunConfig(ordering="full_preact", **r164)).reported == 5.46
    assert paper_row(RunConfig(ordering="bn_after_add")).reported == 8.17
    assert paper_row(RunConfig(block="single", ordering="full_preact")).reported == 8.91
    assert paper_row(RunConfig(dataset="cifar100", ordering="full_preact", **r164)).reported == 24.33
    assert paper_row(RunConfig(shortcut="constant", shortcut_scale=0.5, residual_scale=0.5)).reported == 12.35
    assert paper_row(RunConfig(shortcut="exclusive_gate", gate_bias=-3)).fails  # covered: 0 ... -5
    assert paper_row(RunConfig(shortcut="shortcut_gate", gate_bias=0)).reported == 12.86
    r1001 = dict(batch_size=64, nesterov=True, last_batch="keep", crop_padding="mean", bn_batch=32)
    assert paper_row(RunConfig(depth=1001, block="bottleneck", ordering="full_preact", **r1001)).reported == 4.62


def test_matching_ignores_seed_and_schedule_but_not_the_method():
    cfg = RunConfig(ordering="full_preact", seed=4, iterations=300, test_size=2000, precision="bf16")
    assert paper_row(cfg).reported == 6.37
    assert paper_row(RunConfig(gate_bias=-2.0)).reported == 6.61  # identity ignores b_g
    # shortcut BN: the paper's default per ordering; overriding it leaves the paper's network
    assert paper_row(RunConfig(shortcut="conv1x1")).reported == 12.22  # with BN: Fig. 2 caption
    assert paper_row(RunConfig(shortcut="conv1x1", shortcut_bn=False)) is None
    assert (
        paper_row(RunConfig(depth=164, block="bottleneck", ordering="full_preact", shortcut_bn=True)) is None
    )  # authors' pre-act projection: no BN
    assert paper_row(RunConfig(shortcut_bn=True)).reported == 6.61  # no shortcut conv: no BN
    assert paper_row(RunConfig(depth=56)) is None
    assert paper_row(RunConfig(dataset="synthetic")) is None


def test_folder_copies_match_but_are_flagged():
    ref = paper_row(RunConfig(dataset="folder:/data/cifar10-jpeg.tar.gz", ordering="full_preact"))
    assert ref.reported == 6.37 and not ref.comparable
    assert paper_row(RunConfig(dataset="folder:/data/my-flowers")) is None


def test_preset_configs_seed_major_with_schedule():
    cfgs = preset_configs("table2", seeds=3, schedule="quick")
    assert len(cfgs) == 30 and len({c.key for c in cfgs}) == 30
    assert [c.seed for c in cfgs[:10]] == [0] * 10  # a whole table at n=1 first
    assert all(c.iterations == SCHEDULES["quick"]["iterations"] for c in cfgs)
    assert all(schedule_name(c) == "quick" for c in cfgs)
    assert schedule_name(preset_configs("table1", 1)[0]) == "paper"
    assert preset_configs("table3", seeds=[7])[0].seed == 7
    with pytest.raises(KeyError):
        preset_configs("table9", 1)


def test_table4_batch64_row_is_the_authors_recipe():
    """200 epochs at batch 64, Nesterov, no warm-up (issue #9, item 5), and as fb.resnet.torch
    does (issue #18, item 2): epochs counted from 1, so lr /10 for epoch >= 81 and >= 122, i.e.
    after 80 and 121 epochs; the last partial batch kept (782 updates per epoch); crops padded
    with the mean colour; -nGPU 2: BN over 32 images."""
    from trainers.core.presets import PRESETS
    from trainers.engine.train import lr_at

    cfg = PRESETS["table4"].rows[0].config()
    per_epoch = 782  # ceil(50,000 / 64): the 782nd batch holds 16 images
    assert (cfg.batch_size, cfg.iterations, cfg.nesterov, cfg.warmup_iterations) == (64, 200 * per_epoch, True, 0)
    assert (cfg.last_batch, cfg.crop_padding, cfg.bn_batch) == ("keep", "mean", 32)
    assert cfg.milestone_iterations() == (80 * per_epoch, 121 * per_epoch) == (62_560, 94_622)

    def torch_lr(epoch: int) -> float:  # fb.resnet.torch train.lua, epochs from 1
        return 0.1 * 0.1 ** (2 if epoch >= 122 else 1 if epoch >= 81 else 0)

    for epoch in (1, 80, 81, 121, 122, 200):
        for batch in (0, per_epoch - 1):  # every update of that epoch
            assert lr_at(cfg, (epoch - 1) * per_epoch + batch) == pytest.approx(torch_lr(epoch)), epoch
    assert "Nesterov" in PRESETS["table4"].rows[0].remark
    # the same net with the paper's 64k-iteration plain-momentum recipe is not this row
    assert paper_row(cfg.replace(nesterov=False)) is None


def test_table5_rows_are_reference_only():
    from trainers.core.presets import NOT_TRAINED_HERE, PRESETS, TABLE5_NOTE, table5_rows

    rows = table5_rows()
    assert [(r["top-1 error %"], r["top-5 error %"]) for r in rows] == [
        (23.0, 6.7),
        (21.3, 5.5),
        (21.1, 5.5),
        (21.8, 6.0),
        (20.7, 5.3),
        (20.1, 4.8),
        (21.2, 5.6),
    ]
    # issue #18, item 3: the whole table, each row's crop sizes and the paper's caption
    assert [(r["network"], r["test crop"]) for r in rows][:2] == [
        ("ResNet-152, original", "224×224"),
        ("ResNet-152, original", "320×320"),
    ]
    assert (rows[-1]["network"], rows[-1]["train crop"], rows[-1]["test crop"]) == (
        "Inception v3",
        "299×299",
        "299×299",
    )
    assert "single-crop" in TABLE5_NOTE and "ILSVRC 2012 validation" in TABLE5_NOTE
    assert all(r["status"] == NOT_TRAINED_HERE for r in rows)
    assert "ImageNet folder" in TABLE5_NOTE and "multi-GPU" in TABLE5_NOTE
    assert not any(row.table == "Table 5" for p in PRESETS.values() for row in p.rows)  # never launched


def test_schedule_name_knows_table4_s_own_paper_schedule():
    from trainers.core.presets import PRESETS, preset_configs, schedule_name

    assert schedule_name(PRESETS["table4"].rows[0].config(seed=3)) == "paper"
    assert schedule_name(preset_configs("table4", 1, "short")[0]) == "short"
    assert schedule_name(RunConfig()) == "paper" and schedule_name(RunConfig(iterations=300)) != "paper"
