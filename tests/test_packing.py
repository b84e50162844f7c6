"""Seed packing: K seeds as one grouped network must be K standalone runs, value by value."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from trainers import RunConfig
from trainers.core.pack_rules import should_pack, why_not_packable
from trainers.core.registry import ORDERINGS, SHORTCUTS
from trainers.engine.model import build_model
from trainers.engine.pack_state import (
    PackingError,
    pack_optimizer_states,
    pack_state_dicts,
    unpack_optimizer_state,
    unpack_state_dict,
)
from trainers.engine.train import train

TINY = dict(dataset="synthetic", depth=8, batch_size=32, train_size=512, test_size=256)
K = 3


def _seeded_models(cfg, seeds, dtype=torch.float32):
    models = []
    for s in seeds:
        torch.manual_seed(s)
        m = build_model(cfg).to(dtype)
        with torch.no_grad():  # BN starts at 1/0 in every seed: make each network's BN its own
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.weight.uniform_(0.5, 1.5), mod.bias.uniform_(-0.5, 0.5)
                    mod.running_mean.uniform_(-0.5, 0.5), mod.running_var.uniform_(0.5, 2.0)
        models.append(m)
    return models


def _packed(cfg, models, dtype=torch.float32):
    packed = build_model(cfg, packs=len(models)).to(dtype)
    packed.load_state_dict(pack_state_dicts([m.state_dict() for m in models]))
    return packed


def test_pack_unpack_round_trip():
    cfg = RunConfig(**TINY, shortcut="exclusive_gate")
    models = _seeded_models(cfg, range(K))
    sds = [m.state_dict() for m in models]
    back = unpack_state_dict(pack_state_dicts(sds), K)
    for a, b in zip(sds, back):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    opt_states = []
    for m in models:
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        for p in m.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
        opt_states.append(opt.state_dict())
    for a, b in zip(opt_states, unpack_optimizer_state(pack_optimizer_states(opt_states), K)):
        for i in a["state"]:
            assert torch.equal(a["state"][i]["momentum_buffer"], b["state"][i]["momentum_buffer"])


VARIANTS = [dict(ordering=o, shortcut=s) for o, s in itertools.product(ORDERINGS, SHORTCUTS)] + [
    dict(block="bottleneck", depth=11, ordering="full_preact"),
    dict(block="single", depth=5, ordering="original"),
    dict(downsample="conv", shortcut_bn=True),
    dict(shortcut="shortcut_gate", gate_width="single", shortcut_bn=True, ordering="full_preact"),
    dict(shortcut="constant", shortcut_scale=0.5, residual_scale=0.5),
    dict(bn_batch=2),  # ghost batches: each network's 4 images in two BN groups (issue #18)
    dict(bn_batch=2, shortcut="exclusive_gate", shortcut_bn=True, downsample="conv"),
]


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{x}" for x in v.values()))
def test_packed_forward_is_each_networks_forward(variant):
    cfg = RunConfig(**{**TINY, **variant})
    models = _seeded_models(cfg, range(K))
    packed = _packed(cfg, models)
    xs = [torch.randn(4, 3, 32, 32) for _ in range(K)]
    # train mode uses each network's batch statistics; the dropout shortcut is random in training,
    # so it is compared in eval mode only (its eval is the deterministic scale 1-p)
    modes = (False,) if cfg.shortcut == "dropout" else (True, False)
    for training in modes:
        for m in [*models, packed]:
            m.train(training)
        with torch.no_grad():
            want = torch.stack([m(x) for m, x in zip(models, xs)], dim=1)  # (N, K, classes)
            got = packed(torch.cat(xs, dim=1))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shortcut", ["identity", "exclusive_gate", "conv1x1"])
def test_packed_sgd_is_standalone_sgd_exactly_in_float64(shortcut):
    """The math, free of float32 rounding: five SGD steps, packed vs standalone, to 1e-12."""
    cfg = RunConfig(**TINY, shortcut=shortcut, ordering="full_preact")
    models = _seeded_models(cfg, range(K), torch.float64)
    packed = _packed(cfg, models, torch.float64)
    sgd = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)
    opts = [torch.optim.SGD(m.parameters(), **sgd) for m in models]
    popt = torch.optim.SGD(packed.parameters(), **sgd)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        xs = [torch.randn(8, 3, 32, 32, generator=g, dtype=torch.float64) for _ in range(K)]
        ys = [torch.randint(0, 10, (8,), generator=g) for _ in range(K)]
        for m, o, x, y in zip(models, opts, xs, ys):
            o.zero_grad()
            F.cross_entropy(m(x), y).backward()
            o.step()
        out = packed(torch.cat(xs, dim=1))
        popt.zero_grad()
        sum(F.cross_entropy(out[:, k], ys[k]) for k in range(K)).backward()  # loss summed over models
        popt.step()
    for m, sd in zip(models, unpack_state_dict(packed.state_dict(), K)):
        for name, t in m.state_dict().items():
            torch.testing.assert_close(sd[name], t, rtol=0, atol=1e-12, msg=name)


def _checkpoint(cache_dir, cfg):
    return torch.load(cache_dir / "runs" / cfg.key / "checkpoint.pt", weights_only=True)


@pytest.mark.slow
def test_a_packed_train_matches_standalone_runs_in_fp32(tmp_path):
    """The real trainer, end to end: each seed's batches, crops, flips, init, schedule, events."""
    cfgs = [RunConfig(**TINY, seed=s, iterations=4, log_every=2, eval_every=4) for s in (0, 1, 2)]
    packed_dir, alone_dir = tmp_path / "packed", tmp_path / "alone"
    events = [[] for _ in cfgs]
    packed = train(cfgs, device="cpu", cache_dir=packed_dir, on_event=[e.append for e in events], channels_last=False)
    for cfg, res, evs in zip(cfgs, packed, events):
        alone_events = []
        alone = train(cfg, device="cpu", cache_dir=alone_dir, on_event=alone_events.append, channels_last=False)
        assert res.keys() == alone.keys() and res["key"] == cfg.key and res["status"] == alone["status"]
        assert [e["type"] for e in evs] == [e["type"] for e in alone_events]
        assert res["provenance"]["packed"] == 3 and res["iterations"] == 4
        for a, b in zip(evs, alone_events):
            if a["type"] == "metrics":
                assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
                assert a["train_error"] == pytest.approx(b["train_error"], abs=100 / 64 + 1e-9)  # ≤ 1 image
        assert res["test_error"] == pytest.approx(alone["test_error"], abs=100 / 256 + 1e-9)
        p, a = _checkpoint(packed_dir, cfg), _checkpoint(alone_dir, cfg)
        assert p["iteration"] == a["iteration"] == 4
        assert torch.equal(p["sampler"]["perm"], a["sampler"]["perm"])  # the same batches were drawn
        assert torch.equal(p["sampler"]["generator"], a["sampler"]["generator"])  # ...and crops/flips
        # float32: grouped and plain convolutions round differently (~1e-7), and now and then that
        # flips a ReLU input lying within 1e-6 of zero, which moves that step's gradient by ~1e-3
        # (relative). So each weight tensor is compared by how far training moved it: the packed
        # run's distance from the standalone weights must be a small fraction of the distance the
        # standalone run travelled from its init (another seed's run would be ~100% off).
        # The exactness of the math itself is the float64 test above.
        torch.manual_seed(cfg.seed)
        init = build_model(cfg).state_dict()
        for name, t in a["model"].items():
            if not t.is_floating_point():
                assert torch.equal(p["model"][name], t), name
                continue
            moved = (t - init[name]).norm()
            assert (p["model"][name] - t).norm() <= 2e-2 * moved + 1e-6, name
        for i, st in a["optimizer"]["state"].items():
            got, want = p["optimizer"]["state"][i]["momentum_buffer"], st["momentum_buffer"]
            assert (got - want).norm() <= 3e-2 * want.norm(), i


def test_a_pack_keeps_the_last_partial_batch_as_a_lone_run_does(tmp_path):
    """last_batch: keep (issue #18): every packed network gets its epoch's short last batch at the
    same iteration, and draws what its standalone run draws."""
    cfgs = [
        RunConfig(
            **{**TINY, "train_size": 80},
            last_batch="keep",
            bn_batch=16,
            seed=s,
            iterations=3,
            log_every=3,
            eval_every=3,
        )
        for s in (0, 1)
    ]
    packed = train(cfgs, device="cpu", cache_dir=tmp_path / "packed", channels_last=False)
    alone = train(cfgs[1], device="cpu", cache_dir=tmp_path / "alone", channels_last=False)
    assert [r["epochs"] for r in packed] == [1.0, 1.0] == [alone["epochs"]] * 2  # 32 + 32 + 16 images
    assert packed[1]["train_loss"] == pytest.approx(alone["train_loss"], rel=1e-3)
    p, a = _checkpoint(tmp_path / "packed", cfgs[1]), _checkpoint(tmp_path / "alone", cfgs[1])
    assert torch.equal(p["sampler"]["perm"], a["sampler"]["perm"]) and p["sampler"]["iteration"] == 3
    assert packed[0]["provenance"]["recipe"]["last_batch"] == "keep"


@pytest.mark.slow
def test_a_cancelled_run_leaves_the_pack_and_resumes_alone(tmp_path):
    cfgs = [RunConfig(**TINY, seed=s, iterations=6, log_every=2, eval_every=6) for s in (3, 4)]
    stops = [lambda: True, None]  # the first run is cancelled at its first log interval
    res = train(cfgs, device="cpu", cache_dir=tmp_path, should_stop=stops)  # channels_last
    assert res[0]["status"] == "cancelled" and res[0]["iterations"] == 2
    assert res[1]["status"] in ("done", "fail") and res[1]["iterations"] == 6  # repacked, went on alone
    resumed = train(cfgs[0], device="cpu", cache_dir=tmp_path)  # train() reads its checkpoint
    assert resumed["iterations"] == 6 and resumed["provenance"]["resumed"]


def test_what_packs():
    a = RunConfig(**TINY, seed=0)
    assert why_not_packable([a, a.replace(seed=1)]) is None
    assert "seed" in why_not_packable([a, a.replace(seed=1, depth=14)])
    assert "repeat" in why_not_packable([a, a])
    drop = RunConfig(**TINY, shortcut="dropout")
    assert "dropout" in why_not_packable([drop, drop.replace(seed=1)])
    with pytest.raises(PackingError):
        train([drop, drop.replace(seed=1)], device="cpu")
    # the CPU never packs (measured slower, docs/benchmarks.md); a GPU packs what is packable
    assert not should_pack("cpu", [a, a.replace(seed=1)])
    assert should_pack("cuda", [a, a.replace(seed=1)]) and not should_pack("cuda", [drop, drop.replace(seed=1)])


@pytest.mark.slow
def test_a_pack_grows_with_until_and_resumes_bit_exactly(tmp_path):
    """`until` for a pack: both runs stop at 4, checkpointed and "cancelled"; trained again they
    resume there and end exactly where an uninterrupted pack ends."""
    cfgs = [RunConfig(**TINY, seed=s, iterations=8, log_every=2, eval_every=4) for s in (5, 6)]
    straight = train(cfgs, device="cpu", cache_dir=tmp_path / "straight")
    part = train(cfgs, device="cpu", cache_dir=tmp_path / "parts", until=4)
    assert [r["status"] for r in part] == ["cancelled", "cancelled"] and [r["iterations"] for r in part] == [4, 4]
    events = [[], []]
    rest = train(cfgs, device="cpu", cache_dir=tmp_path / "parts", on_event=[e.append for e in events])
    assert all(e[0]["resumed"] and e[0]["iteration"] == 4 for e in events)
    for cfg, a, b in zip(cfgs, straight, rest):
        assert a["test_error"] == b["test_error"] and a["train_loss"] == b["train_loss"]
        x, y = _checkpoint(tmp_path / "straight", cfg), _checkpoint(tmp_path / "parts", cfg)
        assert all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"])


@pytest.mark.slow
def test_a_misfit_checkpoint_in_a_pack_is_set_aside_or_the_pack_refused(tmp_path):
    cfgs = [RunConfig(**TINY, seed=s, iterations=4, log_every=2, eval_every=4) for s in (7, 8)]
    bad = tmp_path / "runs" / cfgs[0].key / "checkpoint.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"truncated")
    events = [[], []]
    res = train(cfgs, device="cpu", cache_dir=tmp_path, on_event=[e.append for e in events], until=2)
    assert [r["iterations"] for r in res] == [2, 2]  # the other run was fresh too: the pack went on
    assert "cannot be read" in events[0][0]["notes"][0] and events[1][0]["notes"] == []
    assert len(list(bad.parent.glob("checkpoint.unreadable-*.pt"))) == 1
    # now run 0 is at 2 and run 1's checkpoint is unreadable: starting over would split the pack,
    # so nothing is moved and the caller trains them one by one
    other = tmp_path / "runs" / cfgs[1].key / "checkpoint.pt"
    other.write_bytes(b"truncated")
    with pytest.raises(PackingError, match="different iterations"):
        train(cfgs, device="cpu", cache_dir=tmp_path)
    assert other.read_bytes() == b"truncated" and bad.exists()


@pytest.mark.slow
def test_a_stale_run_leaves_the_pack_and_the_others_finish(tmp_path):
    """Run 0's folder is fenced off (another attempt owns it) from its first checkpoint: it writes
    nothing more and gets no end event; run 1 trains to the end; then StaleWriter is raised."""
    from trainers.core.atomic import StaleWriter, set_fence

    cfgs = [RunConfig(**TINY, seed=s, iterations=6, log_every=2, eval_every=6) for s in (9, 10)]
    folder = tmp_path / "runs" / cfgs[0].key
    folder.mkdir(parents=True)
    set_fence(folder, lambda: False)
    events = [[], []]
    try:
        with pytest.raises(StaleWriter):
            train(cfgs, device="cpu", cache_dir=tmp_path, on_event=[e.append for e in events], checkpoint_every_s=0)
    finally:
        set_fence(folder, None)
    assert sorted(p.name for p in folder.iterdir()) == [".write.lock"]  # nothing written by the stale run
    assert "end" not in [e["type"] for e in events[0]] and events[0][-1]["iteration"] == 2
    assert events[1][-1]["type"] == "end" and events[1][-1]["result"]["iterations"] == 6
    assert (tmp_path / "runs" / cfgs[1].key / "result.json").exists()
