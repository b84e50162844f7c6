"""The data layer on small generated files in the real formats (CIFAR pickles, image folders,
tarballs): shapes, labels, checksum refusal before unpickling, error messages, the decoded cache."""

from __future__ import annotations

import io
import os
import pickle
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from cifar_fixtures import (
    CIFAR10_CLASSES,
    MarkerPayload,
    expected_arrays,
    make_tarball,
    md5,
    write_cifar10,
    write_cifar100,
    write_image_folder,
    write_tarball,
)
from PIL import Image

import trainers.engine.data as data_mod
from trainers.engine.data import DataError, channel_stats, dataset_info, load_dataset, synthetic_dataset

TRAIN10 = [f"data_batch_{i}" for i in range(1, 6)]


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails as it would offline; the list records the attempts."""
    attempts = []

    def offline(request, *a, **k):
        attempts.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return attempts


@pytest.fixture
def cifar10_files(cache_dir) -> dict[str, str]:
    return write_cifar10(cache_dir / "data")


def _numpy_stats(x: np.ndarray):
    x = x.astype(np.float64) / 255
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


# --- CIFAR-10 / CIFAR-100 ---------------------------------------------------------------------


def test_cifar10_loads_generated_batches(cache_dir, cifar10_files, no_network):
    ds = load_dataset("cifar10", cache_dir, download=False, expected_md5=cifar10_files)
    folder = cache_dir / "data" / "cifar-10-batches-py"
    train_x, train_y = expected_arrays(folder, TRAIN10, b"labels")
    test_x, test_y = expected_arrays(folder, ["test_batch"], b"labels")
    assert (ds.name, ds.label, ds.classes) == ("cifar10", "CIFAR-10", CIFAR10_CLASSES)
    assert ds.train_x.shape == (40, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert ds.train_x.is_contiguous() and ds.test_x.is_contiguous()
    assert torch.equal(ds.train_x, torch.from_numpy(train_x)) and torch.equal(ds.test_x, torch.from_numpy(test_x))
    assert ds.train_y.tolist() == train_y.tolist() and ds.test_y.tolist() == test_y.tolist()
    mean, std = _numpy_stats(train_x)
    assert np.allclose(ds.mean, mean) and np.allclose(ds.std, std)
    assert not no_network


def test_cifar100_uses_fine_labels_and_meta_names(cache_dir):
    md5s = write_cifar100(cache_dir / "data")
    ds = load_dataset("cifar100", cache_dir, download=False, expected_md5=md5s)
    folder = cache_dir / "data" / "cifar-100-python"
    train_x, train_y = expected_arrays(folder, ["train"], b"fine_labels")
    assert ds.label == "CIFAR-100" and len(ds.classes) == 100 and ds.classes[7] == "fine07"
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
    assert torch.equal(ds.train_x, torch.from_numpy(train_x))
    assert ds.train_y.tolist() == train_y.tolist() and max(ds.train_y.tolist()) > 20  # not coarse


def test_archive_placed_in_cache_data_is_verified_and_extracted(cache_dir, tmp_path, no_network):
    staging = tmp_path / "staging"
    md5s = write_cifar10(staging)
    archive = make_tarball(
        staging / "cifar-10-batches-py", cache_dir / "data" / "cifar-10-python.tar.gz", arcname="cifar-10-batches-py"
    )
    md5s["cifar-10-python.tar.gz"] = md5(archive)
    ds = load_dataset("cifar10", cache_dir, expected_md5=md5s)
    assert len(ds.train_y) == 40 and (cache_dir / "data" / "cifar-10-batches-py" / "test_batch").is_file()
    assert not no_network  # the local archive was used, nothing downloaded


def test_tampered_archive_is_refused(cache_dir, tmp_path, no_network):
    staging = tmp_path / "staging"
    md5s = write_cifar10(staging)
    make_tarball(
        staging / "cifar-10-batches-py", cache_dir / "data" / "cifar-10-python.tar.gz", arcname="cifar-10-batches-py"
    )
    md5s["cifar-10-python.tar.gz"] = "0" * 32
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz has md5 .* tampered"):
        load_dataset("cifar10", cache_dir, expected_md5=md5s)
    assert not (cache_dir / "data" / "cifar-10-batches-py").exists()


def test_download_streams_archive_with_progress(cache_dir, tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    md5s = write_cifar10(staging)
    archive = make_tarball(staging / "cifar-10-batches-py", tmp_path / "a.tar.gz", arcname="cifar-10-batches-py")
    md5s["cifar-10-python.tar.gz"] = md5(archive)
    payload = archive.read_bytes()

    class Response(io.BytesIO):
        length = len(payload)

    urls = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda req, **k: urls.append(req.full_url) or Response(payload))
    calls = []
    ds = load_dataset("cifar10", cache_dir, expected_md5=md5s, progress=lambda m, f: calls.append((m, f)))
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert len(ds.train_y) == 40
    downloads = [f for m, f in calls if m.startswith("downloading")]
    assert downloads and downloads[-1] == 1.0 and all(0 <= f <= 1 for _, f in calls)


def test_corrupt_download_is_discarded(cache_dir, monkeypatch):
    class Response(io.BytesIO):
        length = 5

    monkeypatch.setattr(urllib.request, "urlopen", lambda req, **k: Response(b"wrong"))
    with pytest.raises(DataError, match="discarded"):
        load_dataset("cifar10", cache_dir)
    assert not any((cache_dir / "data").glob("cifar-10-python.tar.gz*"))


def test_tampered_batch_is_refused_before_unpickling(cache_dir, cifar10_files, tmp_path):
    marker = tmp_path / "pwned"
    evil = cache_dir / "data" / "cifar-10-batches-py" / "data_batch_2"
    evil.write_bytes(pickle.dumps({b"data": MarkerPayload(marker)}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_2 has md5 .* not read"):
        load_dataset("cifar10", cache_dir, download=False, expected_md5=cifar10_files)
    assert not marker.exists()


def test_restricted_unpickler_refuses_code_even_with_matching_md5(cache_dir, cifar10_files, tmp_path):
    # defence in depth: someone who can also change the checksum list still cannot run code
    marker = tmp_path / "pwned"
    evil = cache_dir / "data" / "cifar-10-batches-py" / "data_batch_2"
    evil.write_bytes(pickle.dumps({b"data": MarkerPayload(marker)}, protocol=2))
    with pytest.raises(DataError, match=r"global io\.open is not allowed"):
        load_dataset("cifar10", cache_dir, download=False, expected_md5={**cifar10_files, "data_batch_2": md5(evil)})
    assert not marker.exists()


def test_official_checksums_come_from_torchvision():
    import torchvision.datasets as tvd

    md5s = data_mod.CIFAR["cifar10"].official_md5()
    assert md5s["data_batch_1"] == tvd.CIFAR10.train_list[0][1]
    assert md5s["cifar-10-python.tar.gz"] == tvd.CIFAR10.tgz_md5
    assert data_mod.CIFAR["cifar100"].official_md5()["meta"] == tvd.CIFAR100.meta["md5"]


def test_offline_error_says_what_to_do(cache_dir, no_network):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", cache_dir)
    msg = str(e.value)
    assert no_network and "offline" in msg and "folder:" in msg and "cifar-10-python.tar.gz" in msg
    assert str(cache_dir / "data") in msg


def test_missing_batch_without_download(cache_dir, cifar10_files, no_network):
    (cache_dir / "data" / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="downloading is off.*folder:"):
        load_dataset("cifar10", cache_dir, download=False, expected_md5=cifar10_files)
    assert not no_network


def _rewrite_batch(cache_dir: Path, name: str, batch: dict) -> dict[str, str]:
    path = cache_dir / "data" / "cifar-10-batches-py" / name
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return {name: md5(path)}


def test_wrongly_shaped_batch_is_named(cache_dir, cifar10_files):
    bad = _rewrite_batch(cache_dir, "data_batch_3", {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4})
    with pytest.raises(DataError, match=r"data_batch_3.*\(N, 3072\)"):
        load_dataset("cifar10", cache_dir, download=False, expected_md5={**cifar10_files, **bad})


def test_label_count_mismatch_is_named(cache_dir, cifar10_files):
    bad = _rewrite_batch(cache_dir, "data_batch_1", {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3})
    with pytest.raises(DataError, match=r"data_batch_1.*one integer label per image"):
        load_dataset("cifar10", cache_dir, download=False, expected_md5={**cifar10_files, **bad})


def test_label_out_of_range(cache_dir, cifar10_files):
    bad = _rewrite_batch(cache_dir, "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    with pytest.raises(DataError, match=r"labels must be in 0\.\.9"):
        load_dataset("cifar10", cache_dir, download=False, expected_md5={**cifar10_files, **bad})


# --- folder:PATH and tarballs -----------------------------------------------------------------


def test_folder_of_pngs_loads_exact_pixels_in_sorted_class_order(tmp_path, cache_dir):
    written = write_image_folder(tmp_path / "my-images", ["cat", "ant", "bee"])
    ds = load_dataset(f"folder:{tmp_path / 'my-images'}", cache_dir)
    assert ds.label == "my-images" and ds.classes == ["ant", "bee", "cat"]
    assert ds.train_x.shape == (9, 3, 32, 32) and ds.test_x.shape == (6, 3, 32, 32)
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert np.array_equal(ds.train_x[3].numpy(), written["train/bee/0000.png"])  # PNG is lossless
    assert np.array_equal(ds.test_x[5].numpy(), written["test/cat/0001.png"])


def test_folder_of_jpegs_grayscale_and_rgba(tmp_path, cache_dir):
    root = tmp_path / "mixed"
    written = write_image_folder(root, ["a", "b"], per_class=2, n_test=1, fmt="jpg")
    Image.new("L", (32, 32), 77).save(root / "train" / "a" / "gray.png")
    Image.new("RGBA", (32, 32), (10, 20, 30, 128)).save(root / "train" / "b" / "rgba.png")
    ds = load_dataset(f"folder:{root}", cache_dir)
    assert ds.train_x.shape == (6, 3, 32, 32)
    diff = np.abs(ds.train_x[0].numpy().astype(int) - written["train/a/0000.jpg"].astype(int)).mean()
    assert diff < 12  # JPEG is lossy, but it is the same image
    assert (ds.train_x[2] == 77).all()  # files sorted: 0000.jpg, 0001.jpg, gray.png
    assert ds.train_x[5].view(3, -1)[:, 0].tolist() == [10, 20, 30]


def test_folder_wrong_size_names_the_file(tmp_path, cache_dir):
    root = tmp_path / "imgs"
    write_image_folder(root, ["a", "b"], per_class=1, n_test=1)
    Image.new("RGB", (64, 48)).save(root / "train" / "b" / "big.png")
    with pytest.raises(DataError, match=r"big\.png is 64x48 pixels.*32x32"):
        load_dataset(f"folder:{root}", cache_dir)


def test_folder_undecodable_image_names_the_file(tmp_path, cache_dir):
    root = tmp_path / "imgs"
    write_image_folder(root, ["a", "b"], per_class=1, n_test=1)
    (root / "test" / "a" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot decode image .*broken\.jpg"):
        load_dataset(f"folder:{root}", cache_dir)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_test", "needs train/ and test/"),
        ("class_mismatch", r"same class folders.*only in train: \['b'\]"),
        ("empty_class", "has no .jpg/.jpeg/.png images"),
        ("missing", "does not exist"),
    ],
)
def test_folder_layout_errors(tmp_path, cache_dir, breakage, message):
    root = tmp_path / "imgs"
    write_image_folder(root, ["a", "b", "c"], per_class=1, n_test=1)
    if breakage == "no_test":
        os.rename(root / "test", root / "tests")
    elif breakage == "class_mismatch":
        os.rename(root / "test" / "b", root / "test" / "bb")
    elif breakage == "empty_class":
        (root / "train" / "b" / "0000.png").unlink()
    else:
        root = tmp_path / "nowhere"
    with pytest.raises(DataError, match=message):
        load_dataset(f"folder:{root}", cache_dir)


@pytest.mark.parametrize("arcname", [".", "wrapped"])
def test_tarball_loads_like_its_folder(tmp_path, cache_dir, arcname):
    write_image_folder(tmp_path / "imgs", ["x", "y"], per_class=2, n_test=1)
    tar = make_tarball(tmp_path / "imgs", tmp_path / "my-set.tar.gz", arcname=arcname)
    ds = load_dataset(f"folder:{tar}", cache_dir)
    ref = load_dataset(f"folder:{tmp_path / 'imgs'}", cache_dir)
    assert ds.label == "my-set" and ds.classes == ["x", "y"]
    assert torch.equal(ds.train_x, ref.train_x) and torch.equal(ds.test_y, ref.test_y)
    assert not (cache_dir / "data" / "extracted").exists()  # decoded from the stream, not unpacked


def test_shared_copy_is_labelled_as_jpeg_copy(tmp_path, cache_dir):
    write_image_folder(tmp_path / "imgs", ["x", "y"], per_class=1, n_test=1, fmt="jpg")
    tar = make_tarball(tmp_path / "imgs", tmp_path / "cifar10-jpeg.tar.gz")
    assert load_dataset(f"folder:{tar}", cache_dir).label == "CIFAR-10 (JPEG copy)"
    assert dataset_info(f"folder:{tar}", cache_dir)["label"] == "CIFAR-10 (JPEG copy)"


@pytest.mark.parametrize("evil", ["../escape.txt", "train/../../escape.txt", "/tmp/abs-escape-{}.txt"])
def test_tarball_with_unsafe_member_is_refused(tmp_path, cache_dir, evil):
    evil = evil.format(os.getpid())
    tar = write_tarball(tmp_path / "bad.tar.gz", {"train/a/0.png": b"x", evil: b"gotcha"})
    with pytest.raises(DataError, match="unsafe member"):
        load_dataset(f"folder:{tar}", cache_dir)
    assert not list(tmp_path.rglob("escape.txt")) and not (cache_dir / "escape.txt").exists()
    assert not Path(f"/tmp/abs-escape-{os.getpid()}.txt").exists()


def test_tarball_with_link_is_refused(tmp_path, cache_dir):
    import tarfile

    tar_path = write_tarball(tmp_path / "links.tar.gz", {"train/a/0.png": b"x"})
    with tarfile.open(tar_path, "w:gz") as tar:
        link = tarfile.TarInfo("train/a/1.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match="link or special file"):
        load_dataset(f"folder:{tar_path}", cache_dir)


def test_cifar_archive_with_unsafe_member_is_refused(cache_dir, tmp_path):
    archive = write_tarball(
        cache_dir / "data" / "cifar-10-python.tar.gz", {"cifar-10-batches-py/../../escape.txt": b"gotcha"}
    )
    with pytest.raises(DataError, match="unsafe member"):
        load_dataset("cifar10", cache_dir, expected_md5={"cifar-10-python.tar.gz": md5(archive)})
    assert not list(tmp_path.rglob("escape.txt"))


# --- decoded cache ------------------------------------------------------------------------------


def _forbid(monkeypatch, name: str) -> None:
    """Make `trainers.engine.data.<module>.<name>` fail, e.g. "folder._decode_image"."""
    module, attr = name.split(".")

    def fail(*a, **k):
        raise AssertionError(f"{name} was called: the decoded cache was not used")

    monkeypatch.setattr(getattr(data_mod, module), attr, fail)


def test_folder_decoded_once_then_redecoded_when_changed(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "imgs"
    write_image_folder(root, ["a", "b"], per_class=2, n_test=1)
    first = load_dataset(f"folder:{root}", cache_dir)
    with monkeypatch.context() as m:
        _forbid(m, "folder._decode_image")
        again = load_dataset(f"folder:{root}", cache_dir)
    assert torch.equal(first.train_x, again.train_x) and again.classes == ["a", "b"]
    Image.new("RGB", (32, 32), (1, 2, 3)).save(root / "train" / "a" / "new.png")
    changed = load_dataset(f"folder:{root}", cache_dir)
    assert len(changed.train_y) == len(first.train_y) + 1


def test_tarball_cache_skips_reading_and_decoding(tmp_path, cache_dir, monkeypatch):
    write_image_folder(tmp_path / "imgs", ["a", "b"], per_class=1, n_test=1)
    tar = make_tarball(tmp_path / "imgs", tmp_path / "set.tar.gz")
    first = load_dataset(f"folder:{tar}", cache_dir)
    _forbid(monkeypatch, "folder._decode_image")
    _forbid(monkeypatch, "folder.read_tarball")
    assert torch.equal(load_dataset(f"folder:{tar}", cache_dir).test_x, first.test_x)


def test_cifar_cache_skips_unpickling(cache_dir, cifar10_files, monkeypatch):
    first = load_dataset("cifar10", cache_dir, download=False, expected_md5=cifar10_files)
    _forbid(monkeypatch, "cifar._unpickle")
    again = load_dataset("cifar10", cache_dir, download=False, expected_md5=cifar10_files)
    assert torch.equal(first.train_x, again.train_x) and again.mean == first.mean


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_is_rebuilt(tmp_path, cache_dir, damage):
    write_image_folder(tmp_path / "imgs", ["a", "b"], per_class=1, n_test=1)
    spec = f"folder:{tmp_path / 'imgs'}"
    first = load_dataset(spec, cache_dir)
    (pt,) = (cache_dir / "data" / "decoded").glob("*.pt")
    raw = pt.read_bytes()
    pt.write_bytes(b"garbage" if damage == "garbage" else raw[: len(raw) // 2])
    with pytest.warns(UserWarning, match="unreadable"):
        again = load_dataset(spec, cache_dir)
    assert torch.equal(first.train_x, again.train_x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: the third load reads it cleanly
        load_dataset(spec, cache_dir)


def test_progress_is_reported_while_decoding(tmp_path, cache_dir):
    write_image_folder(tmp_path / "imgs", ["a", "b"], per_class=1, n_test=1)
    calls = []
    load_dataset(f"folder:{tmp_path / 'imgs'}", cache_dir, progress=lambda m, f: calls.append((m, f)))
    assert any(m == "decoding images" for m, _ in calls) and all(0 <= f <= 1 for _, f in calls)


# --- synthetic, Dataset, dataset_info -----------------------------------------------------------


def test_synthetic_is_deterministic_labelled_and_learnable():
    a = load_dataset("synthetic", "unused")
    assert a.label == "synthetic (smoke tests only)" and len(a.classes) == 10
    assert a.train_x.shape == (5000, 3, 32, 32) and a.test_x.shape == (1000, 3, 32, 32)
    b, c = synthetic_dataset(200, 50), synthetic_dataset(200, 50)
    assert torch.equal(b.train_x, c.train_x) and torch.equal(b.test_y, c.test_y) and b.mean == c.mean
    assert torch.bincount(a.train_y).tolist() == [500] * 10
    # learnable: even a nearest-class-mean classifier beats chance (10%) by far
    means = torch.stack([a.train_x[a.train_y == c].float().mean(0) for c in range(10)])
    dist = torch.cdist(a.test_x[:300].float().flatten(1), means.flatten(1))
    assert (dist.argmin(1) == a.test_y[:300]).float().mean() > 0.3


def test_synthetic_test_set_does_not_depend_on_train_size():
    assert torch.equal(synthetic_dataset(20, 10).test_x, synthetic_dataset(40, 10).test_x)


def test_subset_is_a_fixed_sample_of_every_class_and_recomputes_stats():
    ds = synthetic_dataset(50, 20)
    # a dataset stored class by class, as folder datasets are: "the first 10" would be one class
    order = torch.argsort(ds.train_y, stable=True)
    ds = replace(ds, train_x=ds.train_x[order], train_y=ds.train_y[order])
    sub = ds.subset(10, 0)
    assert len(sub.train_y) == 10 and len(set(sub.train_y.tolist())) > 3
    assert torch.equal(sub.train_x, ds.subset(10, 0).train_x), "the same images every time"
    assert torch.equal(sub.test_x, ds.test_x)
    # each kept image is one of the originals, with its own label
    for x, y in zip(sub.train_x, sub.train_y):
        i = next(i for i in range(50) if torch.equal(ds.train_x[i], x))
        assert ds.train_y[i] == y
    assert sub.mean == channel_stats(sub.train_x)[0] and ds.subset(0, 0) is ds
    assert len(ds.subset(0, 5).test_y) == 5
    with pytest.raises(DataError, match="train_size 51 is more than the 50"):
        ds.subset(51, 0)


def test_dataset_repr_has_no_tensors():
    assert "tensor" not in repr(synthetic_dataset(10, 10))


def test_unknown_spec():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnist", "cache")
    with pytest.raises(DataError, match="unknown dataset"):
        dataset_info("mnist", "cache")


def test_dataset_info_neither_downloads_nor_decodes(tmp_path, cache_dir, cifar10_files, no_network, monkeypatch):
    empty = tmp_path / "empty-cache"
    info = dataset_info("cifar10", empty)
    assert info["present"] is False and info["downloadable"] and (info["num_train"], info["num_test"]) == (50000, 10000)
    assert dataset_info("cifar10", cache_dir)["present"]  # the generated batch files
    assert dataset_info("synthetic", empty)["num_train"] == 5000
    root = tmp_path / "imgs"
    write_image_folder(root, ["a", "b"], per_class=2, n_test=1)
    before = dataset_info(f"folder:{root}", cache_dir)
    assert before["present"] and not before["decoded"] and before["num_train"] is None
    load_dataset(f"folder:{root}", cache_dir)
    load_dataset("cifar10", cache_dir, download=False, expected_md5=cifar10_files)
    _forbid(monkeypatch, "folder._decode_image")
    _forbid(monkeypatch, "cifar._unpickle")
    after = dataset_info(f"folder:{root}", cache_dir)
    assert after["decoded"] and (after["num_train"], after["num_test"]) == (4, 2) and after["size_bytes"] > 0
    assert dataset_info("cifar10", cache_dir)["num_train"] == 40
    assert dataset_info(f"folder:{tmp_path / 'nowhere'}", cache_dir)["present"] is False
    assert not no_network


# --- the shared CIFAR-10 JPEG copy (skipped where ../shared is absent) ---------------------------


@pytest.fixture(scope="session")
def shared_cifar(shared_cifar_tarball, tmp_path_factory):
    """Read and decoded once per session (60k JPEGs), into a session-private cache."""
    cache = tmp_path_factory.mktemp("shared-cifar-cache")
    started = time.perf_counter()
    ds = load_dataset(f"folder:{shared_cifar_tarball}", cache)
    return ds, cache, time.perf_counter() - started


@pytest.mark.slow
def test_shared_jpeg_copy_is_cifar10(shared_cifar):
    ds, _, seconds = shared_cifar
    print(f"read + decoded the shared CIFAR-10 JPEG copy in {seconds:.1f} s")
    assert ds.label == "CIFAR-10 (JPEG copy)" and ds.classes == CIFAR10_CLASSES
    assert ds.train_x.shape == (50000, 3, 32, 32) and ds.test_x.shape == (10000, 3, 32, 32)
    assert torch.bincount(ds.train_y).tolist() == [5000] * 10
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10
    # CIFAR-10's well-known channel means, give or take the JPEG round trip
    assert np.allclose(ds.mean, (0.4914, 0.4822, 0.4465), atol=0.01)


@pytest.mark.slow
def test_shared_jpeg_copy_reloads_from_cache(shared_cifar, shared_cifar_tarball, monkeypatch):
    ds, cache, _ = shared_cifar
    _forbid(monkeypatch, "folder._decode_image")
    _forbid(monkeypatch, "folder.read_tarball")
    started = time.perf_counter()
    again = load_dataset(f"folder:{shared_cifar_tarball}", cache)
    print(f"reloaded from the decoded cache in {time.perf_counter() - started:.2f} s")
    assert torch.equal(again.test_x, ds.test_x) and again.mean == ds.mean


def test_relative_folder_paths_are_relative_to_the_project_not_the_working_directory(tmp_path, monkeypatch):
    from trainers.engine.data import PROJECT_ROOT, folder_path

    monkeypatch.chdir(tmp_path)
    assert folder_path("folder:data/x") == (PROJECT_ROOT / "data" / "x").resolve()
    assert folder_path(f"folder:{tmp_path}/y") == tmp_path / "y"
