"""`folder:PATH`: PATH/train/<class>/*.{jpg,jpeg,png} and PATH/test/<class>/*, classes in
alphabetical order, 32x32 images; or a .tar.gz / .tgz / .tar of that layout (e.g. the shared
CIFAR-10 JPEG copy), decoded straight from the archive stream: writing 60k small files first took
1-1.5 min on this machine's busy disk; reading them in memory takes seconds."""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ...core.paths import folder_path
from .base import IMAGE_SIZE, DataError, Dataset, Progress, is_image_name, short_hash
from .cache import finish, read_cache
from .tarballs import MAX_IMAGE_BYTES, Tree, read_tarball

try:
    from torchvision.io import ImageReadMode, decode_image
except ImportError:  # pragma: no cover - torchvision dropped its codecs (deprecated in 0.29)
    ImageReadMode, decode_image = None, None

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
ImageList = list[tuple[str, int]]  # (relative path, label)


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def folder_label(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    # the shared copy (shared/data/README.md): real CIFAR-10 images, but JPEG round-tripped
    return "CIFAR-10 (JPEG copy)" if "cifar10-jpeg" in name.lower() else name


def folder_slug(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name)[:40]
    return f"folder-{name}-{short_hash(str(path))[:12]}"


def load_folder(spec: str, data_dir: Path, report: Progress) -> Dataset:
    path = folder_path(spec)
    slug, label = folder_slug(path), folder_label(path)
    if path.is_file() and _is_archive(path):
        st = path.stat()
        # size + mtime: cheap, and any rewrite of the tarball changes them
        source_key = short_hash(f"{path}|{st.st_size}|{st.st_mtime_ns}")
        cached = read_cache(data_dir, slug, source_key)
        if cached is not None:
            return replace(cached, name=spec)
        tree, blobs = read_tarball(path, report)
        read: Callable[[str], bytes] = blobs.pop  # each image's bytes are dropped as soon as it is decoded
    elif path.is_dir():
        root = _find_split_root(path)
        tree = _folder_tree(root)
        source_key = _listing_key(root, tree)
        cached = read_cache(data_dir, slug, source_key)
        if cached is not None:
            return replace(cached, name=spec)

        def read_file(rel: str) -> bytes:
            with open(root / rel, "rb") as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
            if len(data) > MAX_IMAGE_BYTES:
                raise DataError(f"{root / rel} is larger than {MAX_IMAGE_BYTES // 2**20} MB: not an image we can use")
            return data

        read = read_file
    else:
        raise _not_a_dataset(path)
    classes, train_files, test_files = _layout(tree, path)
    n = len(train_files) + len(test_files)
    train_x = _decode_images(train_files, read, path, report, 0, n)
    test_x = _decode_images(test_files, read, path, report, len(train_files), n)
    train_y = torch.tensor([y for _, y in train_files], dtype=torch.int64)
    test_y = torch.tensor([y for _, y in test_files], dtype=torch.int64)
    return finish(data_dir, slug, spec, source_key, label, classes, train_x, train_y, test_x, test_y)


def _not_a_dataset(path: Path) -> DataError:
    if path.exists():
        return DataError(f"{path} is neither a folder nor a .tar.gz/.tgz/.tar archive")
    return DataError(
        f"{path} does not exist. folder:PATH wants PATH/train/<class>/*.png|jpg and "
        f"PATH/test/<class>/* (or a .tar.gz of that layout)"
    )


def check_folder(spec: str) -> dict:
    """`load_folder`'s layout check without decoding an image (a tarball's members are read, not
    decoded or extracted): DataError saying what is wrong, else the classes and image counts.
    The explorer calls it before Launch, so a bad path never becomes a failed run."""
    path = folder_path(spec)
    if path.is_file() and _is_archive(path):
        tree, _ = read_tarball(path, lambda *_: None, names_only=True)
    elif path.is_dir():
        tree = _folder_tree(_find_split_root(path))
    else:
        raise _not_a_dataset(path)
    classes, train_files, test_files = _layout(tree, path)
    return {"classes": classes, "num_train": len(train_files), "num_test": len(test_files)}


def _layout(tree: Tree, where: Path) -> tuple[list[str], ImageList, ImageList]:
    """Classes (sorted: for the shared copy that is CIFAR-10's label order) and the labelled
    train and test images, each class's files sorted by name."""
    for split in ("train", "test"):
        if split not in tree:
            raise DataError(
                f"{where} needs train/ and test/ subfolders, each with one folder of images "
                f"per class (train/<class>/*.png|jpg); found: {sorted(tree) or 'neither'}"
            )
    classes = sorted(tree["train"])
    if sorted(tree["test"]) != classes:
        only_train = sorted(set(classes) - set(tree["test"]))
        only_test = sorted(set(tree["test"]) - set(classes))
        raise DataError(
            f"{where}: train/ and test/ must have the same class folders; only in train: "
            f"{only_train or '-'}, only in test: {only_test or '-'}"
        )
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


def _find_split_root(path: Path) -> Path:
    """PATH itself, or its only subfolder (a copied archive often wraps its content in one)."""
    if (path / "train").is_dir() or (path / "test").is_dir():
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
    if len(subdirs) == 1 and (subdirs[0] / "train").is_dir():
        return subdirs[0]
    return path  # _layout names what is missing


def _inside(root: Path, p: Path) -> Path:
    """`p`, unless it is a link that leads out of the dataset folder: a dataset reads only itself."""
    if p.is_symlink() and not p.resolve().is_relative_to(root.resolve()):
        raise DataError(f"{p} is a link to {p.resolve()}, outside the dataset folder {root}; copy the files in instead")
    return p


def _folder_tree(root: Path) -> Tree:
    tree: Tree = {}
    for split in ("train", "test"):
        if not _inside(root, root / split).is_dir():
            continue
        tree[split] = {}
        for class_dir in (root / split).iterdir():
            if _inside(root, class_dir).is_dir() and not class_dir.name.startswith("."):
                tree[split][class_dir.name] = [
                    f"{split}/{class_dir.name}/{f.name}"
                    for f in class_dir.iterdir()
                    if is_image_name(f.name) and _inside(root, f)
                ]
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


def _decode_images(
    files: ImageList, read: Callable[[str], bytes], where: Path, report: Progress, offset: int, total: int
) -> torch.Tensor:
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
        raise DataError(
            f"image {where} is {img.shape[-1]}x{img.shape[-2]} pixels; every image must "
            f"be {IMAGE_SIZE}x{IMAGE_SIZE} (CIFAR). Resize the folder's images first."
        )
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
