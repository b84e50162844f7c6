"""Every ordering × shortcut × unit builds, runs forward and backward, and trains every parameter
(parametrised over the registries themselves, like timm's model tests)."""

import itertools

import pytest
import torch
from torch import nn

from trainers import RunConfig, build_model, count_parameters, describe, unit_specs
from trainers.core.registry import BLOCKS, ORDERINGS, SHORTCUTS
from trainers.engine.layers import ZeroPadShortcut

SMALLEST_DEPTH = {"basic": 8, "bottleneck": 11, "single": 5}


@pytest.mark.parametrize("ordering, shortcut, block", list(itertools.product(ORDERINGS, SHORTCUTS, BLOCKS)))
@pytest.mark.slow
def test_every_combination_trains_every_parameter(ordering, shortcut, block):
    # gate_bias 0: with the paper's -6 the gates start almost closed and gradients are tiny but
    # must still be nonzero; 0 makes "every parameter gets a gradient" a sharp check.
    cfg = RunConfig(
        ordering=ordering,
        shortcut=shortcut,
        block=block,
        depth=SMALLEST_DEPTH[block],
        gate_bias=0.0,
        shortcut_scale=0.5,
        residual_scale=0.5,
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"
    model.eval()
    assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize(
    "block, depth, expected_millions",
    [("basic", 110, 1.7), ("bottleneck", 164, 1.7), ("bottleneck", 1001, 10.2), ("single", 110, 1.7)],
)
@pytest.mark.parametrize("ordering", ["original", "full_preact"])
def test_parameter_counts_match_the_paper(block, depth, expected_millions, ordering):
    n = describe(RunConfig(block=block, depth=depth, ordering=ordering))["parameters"]
    assert abs(n / 1e6 - expected_millions) / expected_millions < 0.02, n


@pytest.mark.parametrize("ordering", list(ORDERINGS))
def test_unit_layout_follows_the_ordering(ordering):
    o = ORDERINGS[ordering]
    specs = unit_specs(RunConfig(depth=20, ordering=ordering))
    assert len(specs) == 9
    middle = specs[1]  # a plain unit: no dimension change, no shared pre-activation
    assert [op.kind for op in middle.residual] == o.residual_ops(2)
    assert [op.kind for op in middle.after_add] == list(o.after_add)
    if o.preact_net:
        assert specs[0].residual[0].kind == "conv", "stage 1's first unit reuses the stem's activation"
        assert [op.kind for op in specs[3].preact] == list(o.before_conv), "shared pre-activation"
        assert specs[3].residual[0].kind == "conv"
    else:
        assert all(not s.preact for s in specs)


def test_preact_nets_end_with_bn_relu_and_original_does_not():
    pre = build_model(RunConfig(depth=8, ordering="full_preact"))
    post = build_model(RunConfig(depth=8, ordering="original"))
    assert isinstance(pre.final[0], nn.BatchNorm2d) and isinstance(pre.final[1], nn.ReLU)
    assert isinstance(post.final, nn.Identity)


def test_he_init_and_no_conv_bias():
    model = build_model(RunConfig(depth=20))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            std = m.weight.std().item()
            assert abs(std - (2 / fan_out) ** 0.5) / (2 / fan_out) ** 0.5 < 0.15


def test_gate_bias_initialised_from_config():
    model = build_model(RunConfig(depth=8, shortcut="exclusive_gate", gate_bias=-6.0, shortcut_bn=False))
    biases = [m.bias for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert biases and all(torch.all(b == -6.0) for b in biases)


def _mean_gate(model, x) -> float:
    from trainers.engine.shortcuts import Gate

    seen: list[float] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, out: seen.append(out.mean().item()))
        for m in model.modules()
        if isinstance(m, Gate)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert seen
    return sum(seen) / len(seen)  # the network's mean gate (one unit's 16 channels are noisy)


@pytest.mark.slow
@pytest.mark.parametrize("shortcut_bn", [False, True])
@pytest.mark.parametrize("gate_bias", [0.0, -1.0, -6.0])
def test_gate_bias_acts_the_same_in_training_and_evaluation(gate_bias, shortcut_bn):
    """b_g sets the initial gate with and without BN, in train and eval mode (issue #9, item 1).

    Before the fix BN followed the biased conv: in training it subtracted b_g again (mean gate
    0.50 for every b_g) while evaluation kept it."""
    torch.manual_seed(0)
    cfg = RunConfig(
        depth=8, dataset="synthetic", shortcut="exclusive_gate", gate_bias=gate_bias, shortcut_bn=shortcut_bn
    )
    model = build_model(cfg)
    x = torch.randn(64, 3, 32, 32)
    target = torch.sigmoid(torch.tensor(gate_bias)).item()
    # In training, BN makes the gate's pre-activation exactly unit-variance around b_g, so the
    # mean gate is E[sigmoid(z + b_g)], z ~ N(0, 1): σ(b_g) for 0 and -6 (within 0.002), 0.30 for
    # b_g = -1 (σ(-1) = 0.27: the sigmoid is curved there, no bias placement can remove that).
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(1))
    train_target = torch.sigmoid(z + gate_bias).mean().item() if shortcut_bn else target
    model.train()
    assert abs(_mean_gate(model, x) - train_target) < 0.02
    model.eval()
    assert abs(_mean_gate(model, x) - target) < 0.02


def test_single_gate_width_has_one_gate_map():
    model = build_model(RunConfig(depth=8, shortcut="shortcut_gate", gate_width="single"))
    gate_convs = [m for n, m in model.named_modules() if n.endswith("gate.conv")]
    assert gate_convs and all(c.out_channels == 1 for c in gate_convs)


def test_zero_pad_shortcut_is_subsampled_identity_with_zero_channels():
    x = torch.randn(2, 4, 8, 8)
    y = ZeroPadShortcut(4, 8, 2)(x)
    assert y.shape == (2, 8, 4, 4)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2]) and torch.all(y[:, 4:] == 0)


def test_downsample_option_changes_dimension_changing_units_only():
    zp = unit_specs(RunConfig(depth=20, downsample="zeropad"))
    cv = unit_specs(RunConfig(depth=20, downsample="conv"))
    assert [s.downsample for s in zp] == ["identity"] * 3 + ["zeropad", "identity", "identity"] * 2
    assert [s.downsample for s in cv] == ["identity"] * 3 + ["conv", "identity", "identity"] * 2
    assert count_parameters(build_model(RunConfig(depth=20, downsample="conv"))) > count_parameters(
        build_model(RunConfig(depth=20))
    )


def test_constant_scaling_zero_is_a_plain_net():
    """λ = 0: the shortcut contributes nothing, the unit output equals its residual branch."""
    cfg = RunConfig(depth=8, shortcut="constant", shortcut_scale=0.0, residual_scale=1.0, ordering="full_preact")
    model = build_model(cfg).eval()
    unit = model.units[1]
    x = torch.randn(2, 16, 32, 32)
    assert torch.allclose(unit(x), unit.residual(unit.preact(x)))


def test_dropout_shortcut_expectation_without_rescaling():
    from trainers.engine.shortcuts import DropoutShortcut

    d = DropoutShortcut(0.5, rescale=False)
    s = torch.ones(200_000)
    zero = torch.zeros_like(s)
    d.train()
    assert abs(d(None, s, zero).mean().item() - 0.5) < 0.01  # kept with prob 0.5, not rescaled
    d.eval()
    assert torch.allclose(d(None, s, zero), torch.full_like(s, 0.5))  # the expectation at test time
    r = DropoutShortcut(0.5, rescale=True).eval()
    assert torch.equal(r(None, s, zero), s)


def test_describe_is_json_ready():
    import json

    d = describe(RunConfig(block="bottleneck", depth=164, ordering="full_preact"))
    json.dumps(d)
    assert d["units"] == 54 and len(d["structure"]) == 3
    assert d["structure"][1]["first_unit"].startswith("BN → ReLU → split")


@pytest.mark.parametrize(
    "kw, bn_count",
    [
        ({"shortcut": "conv1x1"}, 3 * 1),  # a BN after each unit's 1x1 shortcut conv (depth 8: 3 units)
        ({"shortcut": "conv1x1", "shortcut_bn": False}, 0),
        ({"shortcut": "exclusive_gate"}, 3),  # after each gate conv
    ],
)
def test_shortcut_bn_builds_what_the_config_names(kw, bn_count):
    model = build_model(RunConfig(depth=8, **kw))
    merges = [u.merge for u in model.units]
    assert sum(isinstance(m, nn.BatchNorm2d) for merge in merges for m in merge.modules()) == bn_count


def test_describe_shows_the_shortcut_bn():
    d = describe(RunConfig(depth=8, shortcut="conv1x1"))
    assert d["shortcut_bn"] is True and "BN" in d["structure"][0]["first_unit"].split("(+")[1]


# --- ghost batches: BN statistics over part of the batch (issue #18, item 5) -------------------


def test_ghost_batch_norm_normalises_each_group_and_keeps_the_first_groups_running_stats():
    """The paper's 2 GPUs: each BN saw its half of the batch. Each group of `images` is normalised
    with its own statistics; the running statistics follow the first group (the first replica)."""
    import copy

    import torch.nn.functional as F

    from trainers.engine.layers import GhostBatchNorm2d, use_ghost_batches

    torch.manual_seed(0)
    plain = nn.BatchNorm2d(4)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5), plain.bias.uniform_(-0.5, 0.5)
    ghost = use_ghost_batches(nn.Sequential(copy.deepcopy(plain)), 3)[0]
    assert isinstance(ghost, GhostBatchNorm2d) and ghost.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(8, 4, 5, 5) * 3 + 1  # groups of 3, 3 and 2 images
    out = ghost(x)
    want = torch.cat([F.batch_norm(g, None, None, plain.weight, plain.bias, True, 0.0, plain.eps) for g in x.split(3)])
    torch.testing.assert_close(out, want)
    first = copy.deepcopy(plain)
    first(x[:3])  # what the first group alone does to the running statistics
    torch.testing.assert_close(ghost.running_mean, first.running_mean)
    torch.testing.assert_close(ghost.running_var, first.running_var)
    assert int(ghost.num_batches_tracked) == 1
    out.square().sum().backward()  # gradients reach gamma and beta through every group
    assert ghost.weight.grad is not None and ghost.weight.grad.abs().sum() > 0
    ghost.eval(), first.eval()
    torch.testing.assert_close(ghost(x), first(x))  # evaluation: plain BN, running statistics
    ghost.train()
    torch.testing.assert_close(
        ghost(x[:3]), F.batch_norm(x[:3], None, None, plain.weight, plain.bias, True, 0.0, plain.eps)
    )  # one group: plain BN


def test_bn_batch_builds_the_same_weights_with_ghost_bn_everywhere():
    from trainers.engine.layers import GhostBatchNorm2d

    cfg = RunConfig(depth=8, shortcut="exclusive_gate", block="basic", downsample="conv")
    torch.manual_seed(3)
    plain = build_model(cfg)
    torch.manual_seed(3)
    ghost = build_model(cfg.replace(bn_batch=64))
    bns = [m for m in ghost.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(type(m) is GhostBatchNorm2d and m.images == 64 for m in bns)  # gates' BN too
    assert not any(isinstance(m, GhostBatchNorm2d) for m in plain.modules())  # default: plain BN
    a, b = plain.state_dict(), ghost.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
