import dataclasses
import json
import math

import pytest

from trainers.core.config import ConfigError, RunConfig
from trainers.core.registry import BLOCKS, ORDERINGS, SHORTCUTS


def test_defaults_are_the_paper_protocol():
    c = RunConfig()
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert (c.warmup_iterations, c.warmup_lr, c.iterations) == (400, 0.01, 64_000)
    assert c.milestone_iterations() == (32_000, 48_000)
    assert c.eval_every == 2000 and c.log_every == 320


def test_auto_downsample_resolves_per_block():
    assert RunConfig(block="basic", depth=110).downsample == "zeropad"
    assert RunConfig(block="bottleneck", depth=164).downsample == "conv"
    assert RunConfig(block="single", depth=110).downsample == "zeropad"
    # resolved values are part of the identity: "auto" and its resolution are the same run
    assert (
        RunConfig(block="bottleneck", depth=164, downsample="conv").key == RunConfig(block="bottleneck", depth=164).key
    )


def test_key_is_canonical_and_changes_with_any_field():
    a = RunConfig(depth=20, seed=1)
    assert a.key == RunConfig.from_json(a.canonical_json()).key
    assert a.key == RunConfig.from_dict(json.loads(json.dumps(a.to_dict()))).key
    assert a.key != a.replace(seed=2).key
    assert a.key != a.replace(ordering="full_preact").key
    assert json.loads(a.canonical_json())["schema"] >= 1


def test_replace_re_resolves_automatic_values():
    a = RunConfig(block="basic", depth=20)
    b = a.replace(block="bottleneck", depth=29)
    assert b.downsample == "conv"
    assert a.replace(iterations=640).eval_every == 20


def test_json_ints_are_accepted_for_floats():
    c = RunConfig.from_dict({"lr": 1, "milestones": [0.5, 0.75]})
    assert c.lr == 1.0 and isinstance(c.lr, float)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"ordering": "postact"}, "unknown ordering"),
        ({"shortcut": "highway"}, "unknown shortcut"),
        ({"block": "wide"}, "unknown block"),
        ({"depth": 21}, r"6n\+2"),
        ({"block": "bottleneck", "depth": 50}, r"9n\+2"),
        ({"block": "single", "depth": 3}, r"3n\+2"),
        ({"lr": 0}, "lr must be > 0"),
        ({"lr": -0.1}, "lr must be > 0"),
        ({"lr": math.nan}, "finite"),
        ({"lr": "0.1"}, "must be a number"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 1.5}, "integer"),
        ({"iterations": 0}, "iterations"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"milestones": (0.75, 0.5)}, "milestones"),
        ({"milestones": (0.5, 1.5)}, "milestones"),
        ({"dropout_p": 1.0}, "dropout_p"),
        ({"dataset": "imagenet"}, "unknown dataset"),
        ({"dataset": "folder:"}, "unknown dataset"),
        ({"precision": "fp16"}, "unknown precision"),
        ({"augment": "yes"}, "true or false"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_values_get_a_clear_message(change, words):
    with pytest.raises(ConfigError, match=words):
        RunConfig(**change)


def test_unknown_field_and_schema_are_refused():
    with pytest.raises(ConfigError, match="unknown config field"):
        RunConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="schema"):
        RunConfig.from_dict({"schema": 999})
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{nope")


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().lr = 1.0  # type: ignore[misc]


def test_registries_have_stable_names():
    assert list(ORDERINGS) == ["original", "bn_after_add", "relu_before_add", "relu_only_preact", "full_preact"]
    assert set(SHORTCUTS) == {"identity", "constant", "exclusive_gate", "shortcut_gate", "conv1x1", "dropout"}
    assert set(BLOCKS) == {"basic", "bottleneck", "single"}


# --- shortcut BN: the paper's choice per ordering and shortcut (issue #9, item 3) ---------------


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({}, False),  # identity + zero-pad: no conv on the shortcut path, nothing to normalise
        ({"shortcut_bn": True}, False),
        ({"shortcut": "conv1x1"}, True),  # Fig. 2 caption: BN after every weight layer
        ({"shortcut": "exclusive_gate"}, True),
        ({"shortcut": "shortcut_gate", "ordering": "bn_after_add"}, True),
        ({"block": "bottleneck", "depth": 164}, True),  # first ResNet paper: projections with BN
        ({"block": "bottleneck", "depth": 164, "ordering": "full_preact"}, False),  # resnet-pre-act.lua
        ({"block": "bottleneck", "depth": 164, "ordering": "relu_only_preact"}, False),
        ({"shortcut": "conv1x1", "shortcut_bn": False}, False),  # an override names what runs
        ({"block": "bottleneck", "depth": 164, "ordering": "full_preact", "shortcut_bn": True}, True),
    ],
)
def test_shortcut_bn_auto_resolves_per_ordering_and_shortcut(kw, expected):
    cfg = RunConfig(**kw)
    assert cfg.shortcut_bn is expected
    assert RunConfig.from_json(cfg.canonical_json()) == cfg


def test_shortcut_bn_default_keeps_the_key_of_runs_without_a_shortcut_conv():
    # the canonical JSON of the default run is what it was before "auto" existed
    assert '"shortcut_bn":false' in RunConfig().canonical_json()
    assert RunConfig(shortcut_bn=True).key == RunConfig().key


def test_shortcut_bn_re_resolves_when_the_ordering_changes():
    cfg = RunConfig(block="bottleneck", depth=164)
    assert cfg.shortcut_bn is True and cfg.replace(ordering="full_preact").shortcut_bn is False


def test_replace_keeps_an_explicit_choice_and_re_resolves_auto():
    """Issue #18, item 1: replace() re-resolves what was left "auto" (or 0), never what was asked."""
    assert RunConfig(shortcut_bn=False).replace(shortcut="conv1x1").shortcut_bn is False
    assert RunConfig(shortcut_bn=True).replace(ordering="full_preact", shortcut="exclusive_gate").shortcut_bn is True
    assert RunConfig().replace(shortcut="conv1x1").shortcut_bn is True  # auto: the paper's choice
    assert RunConfig(shortcut="conv1x1").replace(ordering="full_preact").shortcut_bn is False
    assert RunConfig(downsample="conv").replace(block="single").downsample == "conv"
    assert RunConfig(iterations=100, log_every=5).replace(iterations=200).log_every == 5
    assert RunConfig(iterations=100).replace(iterations=2000).log_every == 10
    # an explicit value that a net without a shortcut conv cannot use still names the same run...
    asked = RunConfig(shortcut_bn=False)
    assert asked == RunConfig() and asked.key == RunConfig().key
    # ...and comes back once the net has one, through any number of replaces
    assert asked.replace(depth=20).replace(shortcut="conv1x1").shortcut_bn is False


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_shortcut_bn_refuses_other_values(bad):
    with pytest.raises(ConfigError, match="shortcut_bn"):
        RunConfig(shortcut_bn=bad)


# --- recipe choices the paper is silent on (issue #9, item 4) ----------------------------------

NEW_RECIPE_FIELDS = {
    "nesterov": True,
    "gate_bias_decay": False,
    "normalization": "pixel_mean",
    "crop_padding": "mean",
    "allow_tf32": False,
    "deterministic": True,
    "bn_batch": 64,  # this and last_batch: issue #18
    "last_batch": "keep",
}


def test_recipe_fields_at_default_leave_the_key_alone():
    cfg = RunConfig()
    assert not any(f'"{k}"' in cfg.canonical_json() for k in NEW_RECIPE_FIELDS)
    assert all(k in cfg.to_dict() for k in NEW_RECIPE_FIELDS)  # results still record them
    assert cfg.key == "1ed06446a2cf7f65"  # the default run's key before these fields existed
    assert RunConfig(ordering="full_preact").key == "c61b8d4649d6a624"  # issue #18: unchanged too


@pytest.mark.parametrize("field, value", list(NEW_RECIPE_FIELDS.items()))
def test_a_non_default_recipe_choice_is_its_own_run(field, value):
    cfg = RunConfig(**{field: value})
    assert cfg.key != RunConfig().key and f'"{field}"' in cfg.canonical_json()
    assert RunConfig.from_json(cfg.canonical_json()) == cfg


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"normalization": "per_image"}, "normalization"),
        ({"crop_padding": "reflect"}, "crop_padding"),
        ({"gate_bias": float("nan")}, "gate_bias must be finite"),
        ({"gate_bias": float("-inf")}, "gate_bias must be finite"),
        ({"nesterov": "yes"}, "nesterov"),
        ({"last_batch": "pad"}, "unknown last_batch 'pad'; choose one of: drop, keep"),
        ({"bn_batch": -1}, "bn_batch must be between 0"),
        ({"bn_batch": 48}, "bn_batch must split batch_size 128 into equal groups of 2 or more, got 48"),
        ({"bn_batch": 128}, "bn_batch must split batch_size 128"),
        ({"bn_batch": 32.5}, "bn_batch must be an integer"),
    ],
)
def test_bad_recipe_input_is_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(**kw)


def test_non_finite_gate_bias_in_json_is_refused():
    with pytest.raises(ConfigError, match="finite"):
        RunConfig.from_json('{"gate_bias": NaN}')
