"""CIFAR-10 / CIFAR-100: the official python-pickle archives (torchvision's URLs and checksums).

The archive's md5 and then every batch file's md5 are checked *before* anything is unpickled, and
the unpickler only admits numpy's array-reconstruction globals (defence in depth: a pickle can run
code, and the batch files are pickles)."""

from __future__ import annotations

import codecs
import json
import os
import pickle
import shutil
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.datasets as tvd
from torch.utils.model_zoo import tqdm  # real tqdm when installed, a plain stderr bar otherwise
from torchvision.datasets.utils import USER_AGENT, calculate_md5

from .base import IMAGE_SIZE, DataError, Dataset, Progress, short_hash
from .cache import check_labels, finish, read_cache
from .tarballs import safe_extract

DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class CifarFormat:
    spec: str
    label: str
    source: Any  # torchvision's dataset class: the URL and the official md5 lists live there
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


def load_cifar(
    fmt: CifarFormat, data_dir: Path, download: bool, report: Progress, expected_md5: dict[str, str] | None
) -> Dataset:
    md5 = {**fmt.official_md5(), **(expected_md5 or {})}
    # The files are pinned by their checksums, so the checksums are the source's identity.
    source_key = short_hash(json.dumps({f: md5[f] for f in fmt.files}, sort_keys=True))
    cached = read_cache(data_dir, fmt.spec, source_key)
    if cached is not None:
        return cached
    folder = data_dir / fmt.folder
    if not all((folder / f).is_file() for f in fmt.files):
        archive = _obtain_cifar_archive(fmt, data_dir, md5, download, report)
        _extract_cifar_archive(fmt, archive, data_dir, report)
    for i, name in enumerate(fmt.files):  # every file, before any of them is unpickled
        report(f"verifying {fmt.folder}/{name}", i / len(fmt.files))
        _verify_md5(
            folder / name,
            md5[name],
            f"delete {folder} and load {fmt.spec} again to re-extract it from the official archive",
        )
    names = _cifar_class_names(fmt, folder)
    train_x, train_y = _cifar_split(fmt, folder, fmt.train_files, len(names), report)
    test_x, test_y = _cifar_split(fmt, folder, fmt.test_files, len(names), report)
    return finish(data_dir, fmt.spec, fmt.spec, source_key, fmt.label, names, train_x, train_y, test_x, test_y)


def _obtain_cifar_archive(
    fmt: CifarFormat, data_dir: Path, md5: dict[str, str], download: bool, report: Progress
) -> Path:
    archive = data_dir / fmt.archive
    if archive.is_file():
        _verify_md5(archive, md5[fmt.archive], f"delete {archive} and load {fmt.spec} again")
        return archive
    if not download:
        raise DataError(f"{fmt.label} is not in {data_dir} and downloading is off. " + _offline_help(fmt, data_dir))
    _download(fmt.url, archive, md5[fmt.archive], report, fmt, data_dir)
    return archive


def _offline_help(fmt: CifarFormat, data_dir: Path) -> str:
    return (
        f"Put the official archive {fmt.archive} (from {fmt.url}) into {data_dir}/, "
        f"or use a local copy in image-folder form with dataset 'folder:PATH' "
        f"(PATH/train/<class>/*.png|jpg and PATH/test/<class>/*, or a .tar.gz of that), "
        f"e.g. folder:../shared/data/cifar10-jpeg.tar.gz for CIFAR-10."
    )


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
        raise DataError(
            f"could not download {fmt.label} from {url} ({e}); is this machine offline? " + _offline_help(fmt, data_dir)
        ) from None
    got = calculate_md5(str(tmp))
    if got != md5:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"the download of {url} has md5 {got}, expected {md5}: it is corrupt or not "
            f"the official file, so it was discarded. Try again later. " + _offline_help(fmt, data_dir)
        )
    os.replace(tmp, dest)


def _extract_cifar_archive(fmt: CifarFormat, archive: Path, data_dir: Path, report: Progress) -> None:
    """Extract into a private folder, then move in only the files that are missing (files that
    are present stay, and are checked like all others)."""
    tmp = data_dir / f".extract-{uuid.uuid4().hex[:8]}"
    try:
        safe_extract(archive, tmp, report)
        folder = data_dir / fmt.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name in fmt.files:
            src = tmp / fmt.folder / name
            if not src.is_file():
                raise DataError(
                    f"{archive} has no {fmt.folder}/{name}: it is not the {fmt.label} "
                    f"python archive. Delete it and load {fmt.spec} again."
                )
            if not (folder / name).is_file():
                os.replace(src, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _verify_md5(path: Path, expected: str, remedy: str) -> None:
    got = calculate_md5(str(path))
    if got != expected:
        raise DataError(
            f"{path} has md5 {got}, expected {expected}: the file is corrupt or has been "
            f"tampered with, so it was not read. To fix: {remedy}."
        )


def _cifar_class_names(fmt: CifarFormat, folder: Path) -> list[str]:
    meta = _unpickle(folder / fmt.meta_file)
    names = meta.get(fmt.names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise DataError(
            f"{folder / fmt.meta_file} has no {fmt.names_key!r} list of class names: "
            f"not a {fmt.label} meta file. Delete {folder} and load {fmt.spec} again."
        )
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_split(
    fmt: CifarFormat, folder: Path, files: list[str], num_classes: int, report: Progress
) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i, name in enumerate(files):
        report(f"reading {fmt.folder}/{name}", i / len(files))
        path = folder / name
        batch = _unpickle(path)
        data = batch.get(b"data") if isinstance(batch, dict) else None
        labels = batch.get(fmt.label_key) if isinstance(batch, dict) else None
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE
        ):
            shape = getattr(data, "shape", None)
            raise DataError(
                f"{path}: b'data' must be a uint8 array of shape (N, 3072), got "
                f"{type(data).__name__} {shape}; not a {fmt.label} batch. "
                f"Delete {folder} and load {fmt.spec} again."
            )
        try:
            labels_np = np.asarray(labels, dtype=np.int64)
        except (TypeError, ValueError):
            labels_np = None
        if labels_np is None or labels_np.shape != (len(data),):
            raise DataError(
                f"{path}: {fmt.label_key!r} must hold one integer label per image "
                f"({len(data)}), got {None if labels_np is None else labels_np.shape}. "
                f"Delete {folder} and load {fmt.spec} again."
            )
        # rows are 1024 red, 1024 green, 1024 blue values, each plane row-major: (3, 32, 32)
        xs.append(torch.from_numpy(data).view(-1, 3, IMAGE_SIZE, IMAGE_SIZE))
        ys.append(torch.from_numpy(labels_np))
    x, y = torch.cat(xs).contiguous(), torch.cat(ys)
    check_labels(y, num_classes, f"{folder}/{'+'.join(files)}")
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
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at pickle protocol 2
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]  # protocol 5
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


def _unpickle(path: Path) -> Any:
    """Only ever called on a file whose md5 has just been checked."""
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the official files are Python 2 pickles (keys come out as bytes)
            return _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - a malformed pickle can fail in many ways; all mean "not CIFAR"
        raise DataError(
            f"{path} could not be read safely ({e}); it is not a CIFAR python batch. "
            f"Delete it and load the dataset again."
        ) from None
