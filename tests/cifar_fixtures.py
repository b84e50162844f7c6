"""Small datasets written in the exact on-disk formats the loader reads, for tests that cannot
download: the CIFAR python pickles (dicts with b"data" uint8 (N, 3072) and b"labels" /
b"fine_labels"), image folders and tarballs of them."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, obj: object) -> None:
    # protocol 2: the closest Python 3 gets to the official Python 2 pickles
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(data_dir: Path, per_batch: int = 8, n_test: int = 10) -> dict[str, str]:
    """`data_dir/cifar-10-batches-py/` with 5 train batches, a test batch and batches.meta.
    Returns the md5 of every file, by name (what `load_dataset(expected_md5=...)` takes)."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        labels = [(i + j) % 10 for j in range(per_batch)]
        _dump(
            folder / f"data_batch_{i}",
            {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": labels,
                b"data": _images(per_batch, i),
                b"filenames": [b"x.png"] * per_batch,
            },
        )
    _dump(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": [j % 10 for j in range(n_test)],
            b"data": _images(n_test, 99),
            b"filenames": [b"x.png"] * n_test,
        },
    )
    _dump(
        folder / "batches.meta",
        {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": per_batch, b"num_vis": 3072},
    )
    return {p.name: md5(p) for p in folder.iterdir()}


def write_cifar100(data_dir: Path, n_train: int = 20, n_test: int = 10) -> dict[str, str]:
    """`data_dir/cifar-100-python/` with train, test and meta (fine and coarse labels)."""
    folder = data_dir / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        fine = [(7 * j + seed) % 100 for j in range(n)]
        _dump(
            folder / name,
            {
                b"filenames": [b"x.png"] * n,
                b"batch_label": name.encode(),
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"data": _images(n, seed),
            },
        )
    _dump(
        folder / "meta",
        {
            b"fine_label_names": [f"fine{i:02d}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i:02d}".encode() for i in range(20)],
        },
    )
    return {p.name: md5(p) for p in folder.iterdir()}


def expected_arrays(data_dir: Path, files: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """What the loader should return, read back with plain pickle (trusted: we wrote them)."""
    xs, ys = [], []
    for name in files:
        d = pickle.loads((data_dir / name).read_bytes(), encoding="bytes")
        xs.append(d[b"data"].reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key]))
    return np.concatenate(xs), np.concatenate(ys)


class MarkerPayload:
    """Unpickling this creates `path`: stands in for a malicious pickle (arbitrary code)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_image_folder(
    root: Path, classes: list[str], per_class: int = 3, n_test: int = 2, fmt: str = "png", seed: int = 0
) -> dict[str, np.ndarray]:
    """root/{train,test}/<class>/NNNN.<fmt>; returns the (3, 32, 32) arrays by relative path."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", per_class), ("test", n_test)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                # flat 8x8 blocks, aligned with JPEG's blocks: JPEG keeps them almost exactly
                blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
                hwc = blocks.repeat(8, axis=0).repeat(8, axis=1)
                rel = f"{split}/{c}/{i:04d}.{fmt}"
                Image.fromarray(hwc).save(root / rel)
                written[rel] = hwc.transpose(2, 0, 1)
    return written


def make_tarball(src: Path, dest: Path, arcname: str = ".") -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=arcname)
    return dest


def write_tarball(tar_path: Path, members: dict[str, bytes]) -> Path:
    """A tarball holding exactly `members` (name -> content), names taken as given (e.g. '../x')."""
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return tar_path
