"""Augmentation against a slow per-image reference, its randomness, normalisation, and the
resumable batch order."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from trainers.engine.augment import BatchSampler, augment_batch, crop_flip, crop_flip_params, normalize


def _images(b: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (b, 3, 32, 32), generator=g, dtype=torch.uint8)  # no zeros: padding shows


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_crop_flip(x: np.ndarray, dy: int, dx: int, flip: bool, padding: int = 4) -> np.ndarray:
    """The textbook version, one image at a time: zero-pad, slice a window, mirror."""
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    window = padded[:, dy : dy + x.shape[1], dx : dx + x.shape[2]]
    return window[:, :, ::-1] if flip else window


def test_shape_dtype_and_device_are_kept():
    x = _images()
    out = augment_batch(x, _gen(0))
    assert out.shape == x.shape and out.dtype == torch.uint8 and out.device == x.device


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = _images(64)
    dy, dx, flip = crop_flip_params(64, _gen(3))
    out = crop_flip(x, dy, dx, flip)
    for i in range(64):
        want = reference_crop_flip(x[i].numpy(), int(dy[i]), int(dx[i]), bool(flip[i]))
        assert np.array_equal(out[i].numpy(), want), f"image {i}: dy={dy[i]} dx={dx[i]} flip={flip[i]}"


@pytest.mark.parametrize("dy, dx, flip", [(0, 0, False), (8, 8, True), (4, 4, False), (4, 4, True), (0, 8, True)])
def test_corner_cases_against_reference(dy, dx, flip):
    x = _images(1)
    out = crop_flip(x, torch.tensor([dy]), torch.tensor([dx]), torch.tensor([flip]))
    assert np.array_equal(out[0].numpy(), reference_crop_flip(x[0].numpy(), dy, dx, flip))
    if (dy, dx) == (0, 0):
        assert (out[0, :, :4, :] == 0).all() and (out[0, :, :, :4] == 0).all()  # zero padding
    if (dy, dx, flip) == (4, 4, False):
        assert torch.equal(out[0], x[0])  # the centre crop is the image itself


def test_augment_batch_uses_crop_flip_params_from_the_generator():
    x = _images()
    assert torch.equal(augment_batch(x, _gen(7)), crop_flip(x, *crop_flip_params(len(x), _gen(7))))


def test_same_seed_same_output_different_seed_differs():
    x = _images(32)
    assert torch.equal(augment_batch(x, _gen(1)), augment_batch(x, _gen(1)))
    assert not torch.equal(augment_batch(x, _gen(1)), augment_batch(x, _gen(2)))


def test_offsets_uniform_and_flips_about_half():
    dy, dx, flip = crop_flip_params(20_000, _gen(0))
    assert 0.48 < flip.float().mean() < 0.52
    for d in (dy, dx):
        counts = torch.bincount(d, minlength=9)
        assert len(counts) == 9 and (counts > 20_000 / 9 * 0.9).all()  # 0..8, each about 1/9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_for_the_same_seed():
    x = _images(128)
    cpu = augment_batch(x, _gen(5))
    gpu = augment_batch(x.cuda(), _gen(5))  # CPU generator: the same draws on either device
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    assert torch.allclose(normalize(x.cuda(), mean, std).cpu(), normalize(x, mean, std), atol=1e-6)


def test_normalize_matches_formula_and_accepts_tensors():
    x = _images(4)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    want = (x.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)) / torch.tensor(
        std, dtype=torch.float64
    ).view(3, 1, 1)
    out = normalize(x, mean, std)
    assert out.dtype == torch.float32 and torch.allclose(out.double(), want, atol=1e-5)
    as_tensors = normalize(x, torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1))
    assert torch.equal(out, as_tensors)
    assert normalize(x[0], mean, std).shape == (3, 32, 32)
    assert normalize(x, mean, std, dtype=torch.bfloat16).dtype == torch.bfloat16


# --- BatchSampler -------------------------------------------------------------------------------


def test_each_index_once_per_epoch_and_last_partial_batch_dropped():
    s = BatchSampler(10, 3, _gen(0))
    assert s.batches_per_epoch == 3
    seen_epochs = []
    for epoch in range(4):
        assert s.epoch == epoch
        batches = [s.next() for _ in range(3)]
        assert all(b.shape == (3,) and b.dtype == torch.int64 for b in batches)
        idx = torch.cat(batches)
        assert len(set(idx.tolist())) == 9 and all(0 <= i < 10 for i in idx.tolist())
        seen_epochs.append(idx.tolist())
    assert len({tuple(e) for e in seen_epochs}) == 4  # a fresh permutation each epoch


def test_the_last_partial_batch_is_kept_when_asked():
    """fb.resnet.torch's loader (issue #18): ceil(n / batch) batches, the last one short."""
    s = BatchSampler(10, 3, _gen(0), drop_last=False)
    assert s.batches_per_epoch == 4
    for epoch in range(3):
        assert s.epoch == epoch
        batches = [s.next() for _ in range(4)]
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        assert sorted(torch.cat(batches).tolist()) == list(range(10))  # every image, once
    assert BatchSampler(50_000, 64, _gen(0), drop_last=False).batches_per_epoch == 782
    assert BatchSampler(50_000, 64, _gen(0)).batches_per_epoch == 781


def test_iteration_maps_to_epoch_and_batch():
    s = BatchSampler(1000, 128, _gen(0))  # 7 batches per epoch, 104 images dropped
    for _ in range(15):
        s.next()
    assert (s.iteration, s.epoch, s.iteration % s.batches_per_epoch) == (15, 2, 1)


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # what a checkpoint will do


@pytest.mark.parametrize("stop_at", [0, 2, 3, 5])  # before start, mid-epoch, epoch boundary, later
def test_resume_is_bit_exact(stop_at):
    g = _gen(11)
    s = BatchSampler(10, 3, g)
    x = _images(10)
    for _ in range(stop_at):
        augment_batch(x[s.next()], g)  # the trainer shares one generator between both
    state = _roundtrip(s.state_dict())
    expected = []
    for _ in range(7):
        idx = s.next()
        expected.append((idx, augment_batch(x[idx], g)))

    g2 = _gen(999)  # a fresh process: different generator state until restored
    resumed = BatchSampler(10, 3, g2)
    resumed.load_state_dict(state)
    assert resumed.iteration == stop_at
    for idx, aug in expected:
        idx2 = resumed.next()
        assert torch.equal(idx2, idx) and torch.equal(augment_batch(x[idx2], g2), aug)


def test_sampler_refuses_impossible_settings():
    with pytest.raises(ValueError, match="cannot fill one batch"):
        BatchSampler(100, 128, _gen(0))
    state = BatchSampler(10, 3, _gen(0)).state_dict()
    with pytest.raises(ValueError, match="n=10"):
        BatchSampler(12, 3, _gen(0)).load_state_dict(state)


def test_sampler_is_an_iterator():
    s = BatchSampler(6, 2, _gen(0))
    first = [b.tolist() for _, b in zip(range(3), s)]
    assert sorted(sum(first, [])) == list(range(6))
