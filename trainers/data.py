"""Datasets as whole uint8 tensors, decoded once and cached under `<cache_dir>/data/`.

Specs (the `dataset` field of a RunConfig):

- `cifar10`, `cifar100`: the official python-pickle archives (torchvision's URLs and checksums).
  The archive's md5 and then every batch file's md5 are checked *before* anything is unpickled,
  and the unpickler only admits numpy's array-reconstruction globals (defence in depth: a pickle
  can run code, and the batch files are pickles).
- `folder:PATH`: `PATH/train/<class>/*.{jpg,jpeg,png}` and `PATH/test/<class>/*`, classes in
  alphabetical order, 32x32 images. PATH may also be a `.tar.gz` / `.tgz` / `.tar` of that layout
  (e.g. the shared CIFAR-10 JPEG copy), decoded straight from the archive stream: writing 60k
  small files first took 1-1.5 min on this machine's busy disk; reading them in memory takes seconds.
- `synthetic`: small, deterministic and learnable; for smoke tests only, never for results.

Every problem with a dataset raises `DataError` with a message that says what to do, before any
training starts. Decoded tensors go to `<cache_dir>/data/decoded/<slug>.pt` with a JSON sidecar
(for `dataset_info`, which must not load 180 MB to count images), keyed by the source so that a
changed source is decoded again.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import uuid
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torchvision.datasets as tvd
from torch.utils.model_zoo import tqdm  # real tqdm when installed, a plain stderr bar otherwise
from torchvision.datasets.utils import USER_AGENT, calculate_md5

from .atomic import atomic_write

try:
    from torchvision.io import ImageReadMode, decode_image
except ImportError:  # pragma: no cover - torchvision dropped its codecs (deprecated in 0.29)
    ImageReadMode, decode_image = None, None

Progress = Callable[[str, float], None]

CACHE_FORMAT = 1  # bump when the decoded-cache layout changes: old caches are then rebuilt
IMAGE_SIZE = 32
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
SYNTHETIC_LABEL = "synthetic (smoke tests only)"
SYNTHETIC_SIZES = (5000, 1000)  # train, test: enough for a short run to visibly learn
DOWNLOAD_TIMEOUT_S = 30
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SUBSET_SEED = 20160316  # the paper's arXiv date; fixes which images a train_size/test_size run sees


class DataError(Exception):
    """A dataset that is missing, corrupt or of the wrong shape. The message says what to do."""


@dataclass(eq=False)
class Dataset:
    name: str  # the spec, e.g. "cifar10" or "folder:/data/my-images"
    label: str  # for humans: "CIFAR-10", "CIFAR-10 (JPEG copy)", "synthetic (smoke tests only)"
    classes: list[str]
    train_x: torch.Tensor = field(repr=False)  # uint8 (N, 3, 32, 32), CPU, contiguous
    train_y: torch.Tensor = field(repr=False)  # int64 (N,)
    test_x: torch.Tensor = field(repr=False)
    test_y: torch.Tensor = field(repr=False)
    mean: tuple[float, float, float]  # per channel, 0-1 scale, from the training images
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, train_size: int = 0, test_size: int = 0) -> "Dataset":
        """A fixed sample of `train_size` / `test_size` images of each split (0 = all of it).

        The sample is a permutation drawn from a fixed seed, the same for every run and every seed:
        folder datasets are stored class by class, so "the first N" would be a single class.

        mean/std are recomputed from the images kept: the normalisation then comes from the very
        training set the run sees (paper: statistics of the training set)."""
        if train_size == 0 and test_size == 0:
            return self
        train_x, train_y = _first(self.train_x, self.train_y, train_size, "train", self.name)
        test_x, test_y = _first(self.test_x, self.test_y, test_size, "test", self.name)
        mean, std = channel_stats(train_x) if train_size else (self.mean, self.std)
        return replace(self, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                       mean=mean, std=std)


def _first(x: torch.Tensor, y: torch.Tensor, n: int, split: str, name: str):
    if n < 0:
        raise DataError(f"{split}_size must be >= 0, got {n}")
    if n > len(y):
        raise DataError(f"{split}_size {n} is more than the {len(y)} {split} images of {name}; "
                        f"use 0 for all of them or a smaller number")
    if n == 0 or n == len(y):
        return x, y
    # a fixed seed, independent of the run's: every run of a quick preset sees the same images
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(SUBSET_SEED))[:n]
    return x[keep].contiguous(), y[keep].contiguous()


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------


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
    report = _reporter(progress)
    data_dir = Path(cache_dir) / "data"
    if spec in CIFAR:
        return _load_cifar(CIFAR[spec], data_dir, download, report, expected_md5)
    if spec == "synthetic":
        return synthetic_dataset()
    if spec.startswith("folder:"):
        return _load_folder(spec, data_dir, report)
    raise DataError(f"unknown dataset {spec!r}; choose cifar10, cifar100, synthetic or folder:PATH")


def dataset_info(spec: str, cache_dir: str | Path) -> dict[str, Any]:
    """What the UI shows about a dataset, without decoding or downloading anything."""
    data_dir = Path(cache_dir) / "data"
    if spec == "synthetic":
        n_train, n_test = SYNTHETIC_SIZES
        return {"spec": spec, "label": SYNTHETIC_LABEL, "present": True, "downloadable": False,
                "decoded": True, "path": None, "size_bytes": 0, "num_train": n_train, "num_test": n_test}
    if spec in CIFAR:
        fmt = CIFAR[spec]
        folder, archive = data_dir / fmt.folder, data_dir / fmt.archive
        source_present = all((folder / f).is_file() for f in fmt.files) or archive.is_file()
        path = folder if folder.is_dir() or not archive.is_file() else archive
        label, downloadable, known = fmt.label, True, (fmt.num_train, fmt.num_test)
        slug = spec
    elif spec.startswith("folder:"):
        path = _folder_path(spec)
        source_present = path.exists()
        label, downloadable, known = _folder_label(path), False, (None, None)
        slug = _folder_slug(path)
    else:
        raise DataError(f"unknown dataset {spec!r}; choose cifar10, cifar100, synthetic or folder:PATH")
    cache_pt, meta = _cache_path(data_dir, slug), _read_sidecar(data_dir, slug)
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
        "spec": spec, "label": label, "present": decoded or source_present,
        "downloadable": downloadable, "decoded": decoded, "path": str(path), "size_bytes": size,
        "num_train": meta["num_train"] if decoded else known[0],
        "num_test": meta["num_test"] if decoded else known[1],
    }


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, 3, H, W), 0-1 scale.

    From a 256-bin histogram per channel: exact integer counts (so the result depends neither on
    chunking nor on thread count), no float copy of the images (50k images as float64 would be
    1.2 GB), and about 8x faster than summing."""
    values = torch.arange(256, dtype=torch.float64)
    mean, std = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = max(1.0, float(counts.sum()))
        m = float((counts * values).sum()) / n
        var = float((counts * (values - m) ** 2).sum()) / n
        mean.append(m / 255)
        std.append(var**0.5 / 255)
    return tuple(mean), tuple(std)


# ----------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100: official pickles, checksummed before they are opened
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CifarFormat:
    spec: str
    label: str
    source: type  # torchvision's dataset class: the URL and the official md5 lists live there
    label_key: bytes  # b"labels" (CIFAR-10) or b"fine_labels" (CIFAR-100: the 100-class labels)
    num_train: int
    num_test: int

    @property
    def url(self) -> str:
        return self.source.url

    @property
    def archive(self) -> str:
        return self.source.filename

    @property
    def folder(self) -> str:
        return self.source.base_folder

    @property
    def train_files(self) -> list[str]:
        return [name for name, _ in self.source.train_list]

    @property
    def test_files(self) -> list[str]:
        return [name for name, _ in self.source.test_list]

    @property
    def meta_file(self) -> str:
        return self.source.meta["filename"]

    @property
    def names_key(self) -> bytes:
        return self.source.meta["key"].encode()

    @property
    def files(self) -> list[str]:
        return [*self.train_files, *self.test_files, self.meta_file]

    def official_md5(self) -> dict[str, str]:
        md5 = {name: h for name, h in (*self.source.train_list, *self.source.test_list)}
        md5[self.meta_file] = self.source.meta["md5"]
        md5[self.archive] = self.source.tgz_md5
        return md5


CIFAR = {
    "cifar10": CifarFormat("cifar10", "CIFAR-10", tvd.CIFAR10, b"labels", 50_000, 10_000),
    "cifar100": CifarFormat("cifar100", "CIFAR-100", tvd.CIFAR100, b"fine_labels", 50_000, 10_000),
}


def _load_cifar(fmt: CifarFormat, data_dir: Path, download: bool, report: Progress,
                expected_md5: dict[str, str] | None) -> Dataset:
    md5 = {**fmt.official_md5(), **(expected_md5 or {})}
    # The files are pinned by their checksums, so the checksums are the source's identity.
    source_key = _hash(json.dumps({f: md5[f] for f in fmt.files}, sort_keys=True))
    cached = _read_cache(data_dir, fmt.spec, source_key)
    if cached is not None:
        return cached
    folder = data_dir / fmt.folder
    if not all((folder / f).is_file() for f in fmt.files):
        archive = _obtain_cifar_archive(fmt, data_dir, md5, download, report)
        _extract_cifar_archive(fmt, archive, data_dir, report)
    for i, name in enumerate(fmt.files):  # every file, before any of them is unpickled
        report(f"verifying {fmt.folder}/{name}", i / len(fmt.files))
        _verify_md5(folder / name, md5[name], f"delete {folder} and load {fmt.spec} again to "
                    f"re-extract it from the official archive")
    names = _cifar_class_names(fmt, folder)
    train_x, train_y = _cifar_split(fmt, folder, fmt.train_files, len(names), report)
    test_x, test_y = _cifar_split(fmt, folder, fmt.test_files, len(names), report)
    return _finish(data_dir, fmt.spec, fmt.spec, source_key, fmt.label, names,
                   train_x, train_y, test_x, test_y)


def _obtain_cifar_archive(fmt: CifarFormat, data_dir: Path, md5: dict[str, str], download: bool,
                          report: Progress) -> Path:
    archive = data_dir / fmt.archive
    if archive.is_file():
        _verify_md5(archive, md5[fmt.archive], f"delete {archive} and load {fmt.spec} again")
        return archive
    if not download:
        raise DataError(f"{fmt.label} is not in {data_dir} and downloading is off. "
                        + _offline_help(fmt, data_dir))
    _download(fmt.url, archive, md5[fmt.archive], report, fmt, data_dir)
    return archive


def _offline_help(fmt: CifarFormat, data_dir: Path) -> str:
    return (f"Put the official archive {fmt.archive} (from {fmt.url}) into {data_dir}/, "
            f"or use a local copy in image-folder form with dataset 'folder:PATH' "
            f"(PATH/train/<class>/*.png|jpg and PATH/test/<class>/*, or a .tar.gz of that), "
            f"e.g. folder:../shared/data/cifar10-jpeg.tar.gz for CIFAR-10.")


def _download(url: str, dest: Path, md5: str, report: Progress, fmt: CifarFormat, data_dir: Path) -> None:
    """Stream `url` to `dest` with a progress bar, keep it only if its md5 is right."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
            total = response.length  # None when the server does not say
            done = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}") as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
                    report(f"downloading {dest.name}", done / total if total else 0.0)
    except (urllib.error.URLError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not download {fmt.label} from {url} ({e}); is this machine offline? "
                        + _offline_help(fmt, data_dir)) from None
    got = calculate_md5(str(tmp))
    if got != md5:
        tmp.unlink(missing_ok=True)
        raise DataError(f"the download of {url} has md5 {got}, expected {md5}: it is corrupt or not "
                        f"the official file, so it was discarded. Try again later. "
                        + _offline_help(fmt, data_dir))
    os.replace(tmp, dest)


def _extract_cifar_archive(fmt: CifarFormat, archive: Path, data_dir: Path, report: Progress) -> None:
    """Extract into a private folder, then move in only the files that are missing (files that
    are present stay, and are checked like all others)."""
    tmp = data_dir / f".extract-{uuid.uuid4().hex[:8]}"
    try:
        _safe_extract(archive, tmp, report)
        folder = data_dir / fmt.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name in fmt.files:
            src = tmp / fmt.folder / name
            if not src.is_file():
                raise DataError(f"{archive} has no {fmt.folder}/{name}: it is not the {fmt.label} "
                                f"python archive. Delete it and load {fmt.spec} again.")
            if not (folder / name).is_file():
                os.replace(src, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _verify_md5(path: Path, expected: str, remedy: str) -> None:
    got = calculate_md5(str(path))
    if got != expected:
        raise DataError(f"{path} has md5 {got}, expected {expected}: the file is corrupt or has been "
                        f"tampered with, so it was not read. To fix: {remedy}.")


def _cifar_class_names(fmt: CifarFormat, folder: Path) -> list[str]:
    meta = _unpickle(folder / fmt.meta_file)
    names = meta.get(fmt.names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise DataError(f"{folder / fmt.meta_file} has no {fmt.names_key!r} list of class names: "
                        f"not a {fmt.label} meta file. Delete {folder} and load {fmt.spec} again.")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_split(fmt: CifarFormat, folder: Path, files: list[str], num_classes: int,
                 report: Progress) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i, name in enumerate(files):
        report(f"reading {fmt.folder}/{name}", i / len(files))
        path = folder / name
        batch = _unpickle(path)
        data = batch.get(b"data") if isinstance(batch, dict) else None
        labels = batch.get(fmt.label_key) if isinstance(batch, dict) else None
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE:
            shape = getattr(data, "shape", None)
            raise DataError(f"{path}: b'data' must be a uint8 array of shape (N, 3072), got "
                            f"{type(data).__name__} {shape}; not a {fmt.label} batch. "
                            f"Delete {folder} and load {fmt.spec} again.")
        try:
            y = np.asarray(labels, dtype=np.int64)
        except (TypeError, ValueError):
            y = None
        if y is None or y.shape != (len(data),):
            raise DataError(f"{path}: {fmt.label_key!r} must hold one integer label per image "
                            f"({len(data)}), got {None if y is None else y.shape}. "
                            f"Delete {folder} and load {fmt.spec} again.")
        # rows are 1024 red, 1024 green, 1024 blue values, each plane row-major: (3, 32, 32)
        xs.append(torch.from_numpy(data).view(-1, 3, IMAGE_SIZE, IMAGE_SIZE))
        ys.append(torch.from_numpy(y))
    x, y = torch.cat(xs).contiguous(), torch.cat(ys)
    _check_labels(y, num_classes, f"{folder}/{'+'.join(files)}")
    return x, y


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Admits only what numpy arrays (and bytes in protocol-2 pickles) need. A CIFAR batch is a
    dict of lists, bytes and uint8 arrays, so anything else means the file is not one."""

    def find_class(self, module: str, name: str) -> Any:
        obj = _ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return obj


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 moved numpy.core to numpy._core; old pickles still name numpy.core
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at pickle protocol 2
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


def _unpickle(path: Path) -> Any:
    """Only ever called on a file whose md5 has just been checked."""
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the official files are Python 2 pickles (keys come out as bytes)
            return _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - a malformed pickle can fail in many ways; all mean "not CIFAR"
        raise DataError(f"{path} could not be read safely ({e}); it is not a CIFAR python batch. "
                        f"Delete it and load the dataset again.") from None


# ----------------------------------------------------------------------------------------------
# folder:PATH (a folder or a tarball of train/<class>/*, test/<class>/*)
# ----------------------------------------------------------------------------------------------


def _folder_path(spec: str) -> Path:
    raw = spec[len("folder:"):]
    if not raw:
        raise DataError("folder: needs a path, e.g. folder:/data/my-images or folder:images.tar.gz")
    path = Path(raw).expanduser()
    # Relative paths are relative to the project root, not to whoever's working directory: the
    # CLI, the app and the detached workers must all read the same files for the same run key.
    return (path if path.is_absolute() else PROJECT_ROOT / path).resolve()


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _folder_label(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    # the shared copy (shared/data/README.md): real CIFAR-10 images, but JPEG round-tripped
    return "CIFAR-10 (JPEG copy)" if "cifar10-jpeg" in name.lower() else name


def _folder_slug(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name)[:40]
    return f"folder-{name}-{_hash(str(path))[:12]}"


def _load_folder(spec: str, data_dir: Path, report: Progress) -> Dataset:
    path = _folder_path(spec)
    slug, label = _folder_slug(path), _folder_label(path)
    if path.is_file() and _is_archive(path):
        st = path.stat()
        # size + mtime: cheap, and any rewrite of the tarball changes them
        source_key = _hash(f"{path}|{st.st_size}|{st.st_mtime_ns}")
        cached = _read_cache(data_dir, slug, source_key)
        if cached is not None:
            return replace(cached, name=spec)
        tree, blobs = _read_tarball(path, report)
        read = blobs.pop  # each image's bytes are dropped as soon as it is decoded
    elif path.is_dir():
        root = _find_split_root(path)
        tree = _folder_tree(root)
        source_key = _listing_key(root, tree)
        cached = _read_cache(data_dir, slug, source_key)
        if cached is not None:
            return replace(cached, name=spec)

        def read(rel: str) -> bytes:
            return (root / rel).read_bytes()

    elif path.exists():
        raise DataError(f"{path} is neither a folder nor a .tar.gz/.tgz/.tar archive")
    else:
        raise DataError(f"{path} does not exist. folder:PATH wants PATH/train/<class>/*.png|jpg and "
                        f"PATH/test/<class>/* (or a .tar.gz of that layout)")
    classes, train_files, test_files = _layout(tree, path)
    n = len(train_files) + len(test_files)
    train_x = _decode_images(train_files, read, path, report, 0, n)
    test_x = _decode_images(test_files, read, path, report, len(train_files), n)
    train_y = torch.tensor([y for _, y in train_files], dtype=torch.int64)
    test_y = torch.tensor([y for _, y in test_files], dtype=torch.int64)
    return _finish(data_dir, slug, spec, source_key, label, classes, train_x, train_y, test_x, test_y)


# split ("train" | "test") -> class folder name -> image paths relative to the dataset root
Tree = dict[str, dict[str, list[str]]]
ImageList = list[tuple[str, int]]  # (relative path, label)


def _layout(tree: Tree, where: Path) -> tuple[list[str], ImageList, ImageList]:
    """Classes (sorted: for the shared copy that is CIFAR-10's label order) and the labelled
    train and test images, each class's files sorted by name."""
    for split in ("train", "test"):
        if split not in tree:
            raise DataError(f"{where} needs train/ and test/ subfolders, each with one folder of images "
                            f"per class (train/<class>/*.png|jpg); found: {sorted(tree) or 'neither'}")
    classes = sorted(tree["train"])
    if sorted(tree["test"]) != classes:
        only_train = sorted(set(classes) - set(tree["test"]))
        only_test = sorted(set(tree["test"]) - set(classes))
        raise DataError(f"{where}: train/ and test/ must have the same class folders; only in train: "
                        f"{only_train or '-'}, only in test: {only_test or '-'}")
    if len(classes) < 2:
        raise DataError(f"{where}/train has {len(classes)} class folder(s); a classifier needs at least 2")
    lists = []
    for split in ("train", "test"):
        files: ImageList = []
        for label, name in enumerate(classes):
            found = sorted(tree[split][name], key=lambda rel: rel.rsplit("/", 1)[-1])
            if not found:
                raise DataError(f"{where}: {split}/{name} has no .jpg/.jpeg/.png images")
            files += [(rel, label) for rel in found]
        lists.append(files)
    return classes, lists[0], lists[1]


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.lower().endswith(IMAGE_SUFFIXES) and not base.startswith(".")


def _find_split_root(path: Path) -> Path:
    """PATH itself, or its only subfolder (a copied archive often wraps its content in one)."""
    if (path / "train").is_dir() or (path / "test").is_dir():
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1 and (subdirs[0] / "train").is_dir():
        return subdirs[0]
    return path  # _layout names what is missing


def _folder_tree(root: Path) -> Tree:
    tree: Tree = {}
    for split in ("train", "test"):
        if not (root / split).is_dir():
            continue
        tree[split] = {}
        for class_dir in (root / split).iterdir():
            if class_dir.is_dir() and not class_dir.name.startswith("."):
                tree[split][class_dir.name] = [f"{split}/{class_dir.name}/{f.name}"
                                               for f in class_dir.iterdir() if _is_image_name(f.name)]
    return tree


def _listing_key(root: Path, tree: Tree) -> str:
    """Names, sizes and mtimes of every image: changes when any image is added, removed or
    rewritten, and costs one stat per file instead of reading 60k images."""
    h = hashlib.sha256()
    for split in sorted(tree):
        for name in sorted(tree[split]):
            h.update(f"{split}/{name}/\n".encode())
            for rel in sorted(tree[split][name]):
                st = (root / rel).stat()
                h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _read_tarball(archive: Path, report: Progress) -> tuple[Tree, dict[str, bytes]]:
    """The image files of a tarball, read in one streamed pass into memory (60k CIFAR JPEGs are
    about 50 MB). Nothing is written to disk, so no member can land outside the cache; members
    with absolute paths or '..' are refused anyway (a sign of a hostile archive), as are links
    and device files, by the same rules as tarfile's "data" extraction filter."""
    dirs: list[str] = []
    blobs: dict[str, bytes] = {}
    size = max(1, archive.stat().st_size)
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            for i, member in enumerate(tar):
                name = _checked_member_name(archive, member)
                if i % 2000 == 0:
                    report(f"reading {archive.name}", raw.tell() / size)
                if member.isdir():
                    dirs.append(name)
                elif _is_image_name(name):
                    blobs[name] = tar.extractfile(member).read()
            report(f"reading {archive.name}", 1.0)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"cannot read {archive}: {e}. The archive is damaged or not a tar file; "
                        f"replace it.") from None
    prefix = _wrapper_prefix([*dirs, *blobs])
    if prefix:
        dirs = [d[len(prefix):] for d in dirs if d.startswith(prefix)]
        blobs = {name[len(prefix):]: data for name, data in blobs.items()}
    tree: Tree = {}
    for d in dirs:
        parts = d.split("/")
        if parts[0] in ("train", "test"):
            tree.setdefault(parts[0], {})
            if len(parts) == 2:
                tree[parts[0]].setdefault(parts[1], [])
    for name in blobs:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] in ("train", "test"):  # <split>/<class>/<file>, else ignored
            tree.setdefault(parts[0], {}).setdefault(parts[1], []).append(name)
    return tree, blobs


def _wrapper_prefix(names: list[str]) -> str:
    """"set/" when every member is under one folder `set/` (as `tar czf set.tar.gz set/` makes)
    and there is no top-level train/: the dataset then lives in that folder."""
    names = [n for n in names if n]
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and not tops & {"train", "test"}:
        return f"{tops.pop()}/"
    return ""


def _checked_member_name(archive: Path, member: tarfile.TarInfo) -> str:
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in re.split(r"[/\\]", name):
        raise DataError(f"{archive} contains an unsafe member {name!r} (absolute path or '..'); "
                        f"refusing to read it. Do not use this archive.")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive} contains {name!r}, which is a link or special file; an image "
                        f"dataset archive must hold only folders and plain files.")
    try:
        tarfile.data_filter(member, "/dataset-root")  # the stdlib's own rules, as a second opinion
    except tarfile.FilterError as e:
        raise DataError(f"{archive} contains an unsafe member {name!r} ({e}); refusing to read it.") from None
    return name.removeprefix("./").rstrip("/")


def _decode_images(files: ImageList, read: Callable[[str], bytes], where: Path, report: Progress,
                   offset: int, total: int) -> torch.Tensor:
    out = torch.empty((len(files), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs (in favour of torchcodec) and warns on
        # every call: 60k identical warnings. They still work; _decode_bytes falls back to PIL.
        warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)
        for i, (rel, _) in enumerate(files):
            if i % 2000 == 0:
                report("decoding images", (offset + i) / max(1, total))
            out[i] = _decode_image(read(rel), f"{where}/{rel}")
    report("decoding images", (offset + len(files)) / max(1, total))
    return out


def _decode_image(data: bytes, where: str) -> torch.Tensor:
    """(3, 32, 32) uint8; grayscale, palette and RGBA images are converted to RGB."""
    try:
        img = _decode_bytes(data)
    except (RuntimeError, ValueError, OSError) as e:
        raise DataError(f"cannot decode image {where}: {e}. Remove or replace the file.") from None
    if tuple(img.shape) != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"image {where} is {img.shape[-1]}x{img.shape[-2]} pixels; every image must "
                        f"be {IMAGE_SIZE}x{IMAGE_SIZE} (CIFAR). Resize the folder's images first.")
    return img


def _decode_bytes(data: bytes) -> torch.Tensor:
    """libjpeg/libpng through torchvision.io: about 15x faster than PIL on 32x32 JPEGs (60k in a
    few seconds on 2 cores instead of a minute)."""
    if decode_image is None:  # a torchvision without image codecs: PIL, slower, same pixels
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as im:
                return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
        except UnidentifiedImageError as e:
            raise ValueError(str(e)) from None
    return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def _safe_extract(archive: Path, dest: Path, report: Progress) -> None:
    """Extract `archive` (the CIFAR python archive: 8 files) under `dest`, refusing absolute paths,
    '..', links and special files; tarfile's "data" filter enforces the same a second time."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:

            def checked() -> Iterator[tarfile.TarInfo]:
                for member in tar:
                    _checked_member_name(archive, member)
                    yield member

            report(f"extracting {archive.name}", 0.0)
            tar.extractall(dest, members=checked(), filter="data")
            report(f"extracting {archive.name}", 1.0)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"cannot extract {archive}: {e}. The archive is damaged or not a tar file; "
                        f"delete it and load the dataset again.") from None


# ----------------------------------------------------------------------------------------------
# synthetic
# ----------------------------------------------------------------------------------------------


def synthetic_dataset(train_size: int = SYNTHETIC_SIZES[0], test_size: int = SYNTHETIC_SIZES[1]) -> Dataset:
    """CIFAR-shaped, 10 classes, the same every time: each class has its own colour and stripe
    orientation, under heavy noise, colour jitter and a random stripe phase, so a short run
    learns it but not instantly (a nearest-class-mean classifier gets about half right).
    For smoke tests only: no result on it means anything about the paper."""
    classes = [f"class {i}" for i in range(10)]
    train_x, train_y = _synthetic_split(train_size, seed=0)
    test_x, test_y = _synthetic_split(test_size, seed=1)  # its own stream: independent of train_size
    mean, std = channel_stats(train_x)
    return Dataset("synthetic", SYNTHETIC_LABEL, classes, train_x, train_y, test_x, test_y, mean, std)


def _synthetic_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    y = y[torch.randperm(n, generator=g)]
    palette = torch.tensor([[230, 60, 60], [60, 200, 60], [60, 60, 230], [220, 220, 60], [220, 60, 220],
                            [60, 220, 220], [240, 150, 40], [130, 70, 200], [150, 150, 150], [90, 50, 30]],
                           dtype=torch.float32)
    angle = y.float() * (torch.pi / 10)  # stripe orientation, 18° apart
    phase = torch.rand(n, generator=g) * 2 * torch.pi
    r = torch.arange(IMAGE_SIZE, dtype=torch.float32)
    rows, cols = r.view(1, -1, 1), r.view(1, 1, -1)
    along = cols * torch.cos(angle).view(-1, 1, 1) + rows * torch.sin(angle).view(-1, 1, 1)
    stripes = torch.sin(along * (2 * torch.pi / 8) + phase.view(-1, 1, 1))  # period 8 px
    # class colour, damped and jittered per image so that colour alone does not give it away
    colour = 0.3 * (palette[y] - 145).view(n, 3, 1, 1) + 128
    colour = colour + 20 * torch.randn((n, 3, 1, 1), generator=g)
    noise = 50 * torch.randn((n, 3, IMAGE_SIZE, IMAGE_SIZE), generator=g)
    x = colour + 40 * stripes.unsqueeze(1) + noise
    return x.round().clamp(0, 255).to(torch.uint8).contiguous(), y.to(torch.int64)


# ----------------------------------------------------------------------------------------------
# validation and the decoded cache
# ----------------------------------------------------------------------------------------------


def _check_labels(y: torch.Tensor, num_classes: int, where: str) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"{where}: labels must be in 0..{num_classes - 1} ({num_classes} classes), found "
                        f"{int(y.min())}..{int(y.max())}. The data does not match its class list.")


def _check_split(x: Any, y: Any, num_classes: int, where: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4 \
            or tuple(x.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{where}: images must be uint8 (N, 3, 32, 32), got "
                        f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (len(x),):
        raise DataError(f"{where}: labels must be int64 ({len(x)},), got "
                        f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
    if len(x) == 0:
        raise DataError(f"{where}: no images")
    _check_labels(y, num_classes, where)


def _finish(data_dir: Path, slug: str, spec: str, source_key: str, label: str, classes: list[str],
            train_x, train_y, test_x, test_y) -> Dataset:
    """Validate, compute the statistics, write the cache."""
    _check_split(train_x, train_y, len(classes), f"{spec} training set")
    _check_split(test_x, test_y, len(classes), f"{spec} test set")
    mean, std = channel_stats(train_x)
    if min(std) == 0:
        raise DataError(f"{spec}: every training image has the same value in one colour channel "
                        f"(std {std}); normalising by it would divide by zero. Check the data.")
    ds = Dataset(spec, label, list(classes), train_x.contiguous(), train_y, test_x.contiguous(),
                 test_y, mean, std)
    _write_cache(data_dir, slug, source_key, ds)
    return ds


def _cache_path(data_dir: Path, slug: str) -> Path:
    return data_dir / "decoded" / f"{slug}.pt"


def _read_sidecar(data_dir: Path, slug: str) -> dict | None:
    try:
        meta = json.loads(_cache_path(data_dir, slug).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == CACHE_FORMAT else None


def _write_cache(data_dir: Path, slug: str, source_key: str, ds: Dataset) -> None:
    pt = _cache_path(data_dir, slug)
    pt.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CACHE_FORMAT, "source_key": source_key, "name": ds.name, "label": ds.label,
               "classes": ds.classes, "train_x": ds.train_x, "train_y": ds.train_y,
               "test_x": ds.test_x, "test_y": ds.test_y, "mean": list(ds.mean), "std": list(ds.std)}
    atomic_write(pt, lambda f: torch.save(payload, f))
    sidecar = {"format": CACHE_FORMAT, "source_key": source_key, "spec": ds.name, "label": ds.label,
               "num_classes": ds.num_classes, "num_train": len(ds.train_y), "num_test": len(ds.test_y)}
    atomic_write(pt.with_suffix(".json"), lambda f: f.write(json.dumps(sidecar, indent=1).encode()))


def _read_cache(data_dir: Path, slug: str, source_key: str) -> Dataset | None:
    """The cached dataset, or None when absent, stale or corrupt (then it is decoded again)."""
    pt = _cache_path(data_dir, slug)
    meta = _read_sidecar(data_dir, slug)
    if meta is None or meta.get("source_key") != source_key or not pt.is_file():
        return None
    try:
        d = torch.load(pt, map_location="cpu", weights_only=True)
        if not isinstance(d, dict) or d.get("format") != CACHE_FORMAT or d.get("source_key") != source_key:
            return None
        classes = [str(c) for c in d["classes"]]
        _check_split(d["train_x"], d["train_y"], len(classes), str(pt))
        _check_split(d["test_x"], d["test_y"], len(classes), str(pt))
        return Dataset(d["name"], d["label"], classes, d["train_x"].contiguous(), d["train_y"],
                       d["test_x"].contiguous(), d["test_y"], tuple(d["mean"]), tuple(d["std"]))
    except Exception as e:  # a truncated or damaged cache file: rebuild rather than crash
        warnings.warn(f"decoded dataset cache {pt} is unreadable ({type(e).__name__}: {e}); decoding again")
        return None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reporter(progress: Progress | None) -> Progress:
    if progress is None:
        return lambda message, fraction: None
    return lambda message, fraction: progress(message, min(1.0, max(0.0, float(fraction))))
