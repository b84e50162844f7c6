"""Datasets as whole uint8 tensors, decoded once and cached under `<cache_dir>/data/`.

Specs (the `dataset` field of a RunConfig), one module each:

- `cifar10`, `cifar100` (cifar.py): the official python-pickle archives, checksummed before they
  are opened, unpickled by an unpickler that only admits numpy arrays.
- `folder:PATH` (folder.py): an image folder `PATH/train/<class>/*`, `PATH/test/<class>/*`, or a
  tarball of one (the shared CIFAR-10 JPEG copy), read without trusting it (tarballs.py).
- `synthetic` (synthetic.py): small, deterministic and learnable; for smoke tests only.

Every problem with a dataset raises `DataError` with a message that says what to do, before any
training starts. Decoded tensors are cached (cache.py), keyed by their source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import IMAGE_SIZE, PROJECT_ROOT, SUBSET_SEED, DataError, Dataset, Progress, channel_stats, reporter
from .cache import CACHE_FORMAT, cache_path, read_sidecar
from .cifar import CIFAR, CifarFormat, load_cifar
from .folder import folder_label, folder_path, folder_slug, load_folder
from .synthetic import SYNTHETIC_LABEL, SYNTHETIC_SIZES, synthetic_dataset

__all__ = [
    "CIFAR",
    "CACHE_FORMAT",
    "IMAGE_SIZE",
    "PROJECT_ROOT",
    "SUBSET_SEED",
    "SYNTHETIC_LABEL",
    "SYNTHETIC_SIZES",
    "CifarFormat",
    "DataError",
    "Dataset",
    "Progress",
    "channel_stats",
    "dataset_info",
    "folder_path",
    "load_dataset",
    "synthetic_dataset",
]


def load_dataset(
    spec: str,
    cache_dir: str | Path,
    *,
    download: bool = True,
    progress: Progress | None = None,
    expected_md5: dict[str, str] | None = None,
) -> Dataset:
    """Load (decoding once, then from the cache) the dataset named by `spec`.

    `expected_md5` (CIFAR only) overrides entries of the official checksum list, by file name
    (`data_batch_1`, `test_batch`, `batches.meta`, `cifar-10-python.tar.gz`, ...); tests use it
    to load small generated files in the CIFAR format. `progress(message, fraction)` is called
    while downloading, extracting and decoding."""
    report = reporter(progress)
    data_dir = Path(cache_dir) / "data"
    if spec in CIFAR:
        return load_cifar(CIFAR[spec], data_dir, download, report, expected_md5)
    if spec == "synthetic":
        return synthetic_dataset()
    if spec.startswith("folder:"):
        return load_folder(spec, data_dir, report)
    raise DataError(f"unknown dataset {spec!r}; choose cifar10, cifar100, synthetic or folder:PATH")


def dataset_info(spec: str, cache_dir: str | Path) -> dict[str, Any]:
    """What the UI shows about a dataset, without decoding or downloading anything."""
    data_dir = Path(cache_dir) / "data"
    if spec == "synthetic":
        n_train, n_test = SYNTHETIC_SIZES
        return {
            "spec": spec,
            "label": SYNTHETIC_LABEL,
            "present": True,
            "downloadable": False,
            "decoded": True,
            "path": None,
            "size_bytes": 0,
            "num_train": n_train,
            "num_test": n_test,
        }
    if spec in CIFAR:
        fmt = CIFAR[spec]
        folder, archive = data_dir / fmt.folder, data_dir / fmt.archive
        source_present = all((folder / f).is_file() for f in fmt.files) or archive.is_file()
        path = folder if folder.is_dir() or not archive.is_file() else archive
        label, downloadable = fmt.label, True
        known: tuple[int | None, int | None] = (fmt.num_train, fmt.num_test)
        slug = spec
    elif spec.startswith("folder:"):
        path = folder_path(spec)
        source_present = path.exists()
        label, downloadable, known = folder_label(path), False, (None, None)
        slug = folder_slug(path)
    else:
        raise DataError(f"unknown dataset {spec!r}; choose cifar10, cifar100, synthetic or folder:PATH")
    cache_pt, meta = cache_path(data_dir, slug), read_sidecar(data_dir, slug)
    decoded = meta is not None and cache_pt.is_file()
    if decoded:
        size = cache_pt.stat().st_size
    elif path.is_file():
        size = path.stat().st_size
    elif path.is_dir() and spec in CIFAR:
        size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    else:
        size = None  # a folder of 60k files: too slow to add up for a UI
    return {
        "spec": spec,
        "label": label,
        "present": decoded or source_present,
        "downloadable": downloadable,
        "decoded": decoded,
        "path": str(path),
        "size_bytes": size,
        "num_train": meta["num_train"] if meta is not None and decoded else known[0],
        "num_test": meta["num_test"] if meta is not None and decoded else known[1],
    }
