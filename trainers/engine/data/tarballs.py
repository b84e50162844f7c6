"""Reading tar archives without trusting them: absolute paths, '..', links and device files are
refused (by our rules, and by tarfile's "data" filter as a second opinion)."""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from .base import DataError, Progress, is_image_name

# split ("train" | "test") -> class folder name -> image paths relative to the dataset root
Tree = dict[str, dict[str, list[str]]]

# A 32x32 CIFAR JPEG is ~1 KB; a photo a few MB. Bigger "images" are refused before they are
# read (tar headers give the size), and the whole read is bounded, so an archive cannot fill memory.
MAX_IMAGE_BYTES = 16 * 2**20
MAX_IMAGES_BYTES = 4 * 2**30


def read_tarball(archive: Path, report: Progress, names_only: bool = False) -> tuple[Tree, dict[str, bytes]]:
    """The image files of a tarball, read in one streamed pass into memory (60k CIFAR JPEGs are
    about 50 MB). Nothing is written to disk, so no member can land outside the cache; members
    with absolute paths or '..' are refused anyway (a sign of a hostile archive), as are links
    and device files, by the same rules as tarfile's "data" extraction filter. `names_only`: the
    tree only (every blob empty), for a layout check."""
    dirs: list[str] = []
    blobs: dict[str, bytes] = {}
    total = 0
    size = max(1, archive.stat().st_size)
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            for i, member in enumerate(tar):
                name = checked_member_name(archive, member)
                if i % 2000 == 0:
                    report(f"reading {archive.name}", raw.tell() / size)
                if member.isdir():
                    dirs.append(name)
                elif is_image_name(name):
                    if member.size > MAX_IMAGE_BYTES:
                        raise DataError(
                            f"{archive}: member {name!r} is {member.size / 2**20:.0f} MB, more than "
                            f"{MAX_IMAGE_BYTES // 2**20} MB per image; refusing to read it"
                        )
                    total += member.size
                    if total > MAX_IMAGES_BYTES:
                        raise DataError(
                            f"{archive}: more than {MAX_IMAGES_BYTES // 2**30} GB of images; "
                            f"too large for an in-memory dataset"
                        )
                    blobs[name] = b"" if names_only else _member_bytes(tar, member)
            report(f"reading {archive.name}", 1.0)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"cannot read {archive}: {e}. The archive is damaged or not a tar file; replace it.") from None
    prefix = _wrapper_prefix([*dirs, *blobs])
    if prefix:
        dirs = [d[len(prefix) :] for d in dirs if d.startswith(prefix)]
        blobs = {name[len(prefix) :]: data for name, data in blobs.items()}
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
    """ "set/" when every member is under one folder `set/` (as `tar czf set.tar.gz set/` makes)
    and there is no top-level train/: the dataset then lives in that folder."""
    names = [n for n in names if n]
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and not tops & {"train", "test"}:
        return f"{tops.pop()}/"
    return ""


def checked_member_name(archive: Path, member: tarfile.TarInfo) -> str:
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in re.split(r"[/\\]", name):
        raise DataError(
            f"{archive} contains an unsafe member {name!r} (absolute path or '..'); "
            f"refusing to read it. Do not use this archive."
        )
    if not (member.isfile() or member.isdir()):
        raise DataError(
            f"{archive} contains {name!r}, which is a link or special file; an image "
            f"dataset archive must hold only folders and plain files."
        )
    try:
        tarfile.data_filter(member, "/dataset-root")  # the stdlib's own rules, as a second opinion
    except tarfile.FilterError as e:
        raise DataError(f"{archive} contains an unsafe member {name!r} ({e}); refusing to read it.") from None
    return name.removeprefix("./").rstrip("/")


def safe_extract(archive: Path, dest: Path, report: Progress) -> None:
    """Extract `archive` (the CIFAR python archive: 8 files) under `dest`, refusing absolute paths,
    '..', links and special files; tarfile's "data" filter enforces the same a second time."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:

            def checked() -> Iterator[tarfile.TarInfo]:
                for member in tar:
                    checked_member_name(archive, member)
                    yield member

            report(f"extracting {archive.name}", 0.0)
            tar.extractall(dest, members=checked(), filter="data")
            report(f"extracting {archive.name}", 1.0)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(
            f"cannot extract {archive}: {e}. The archive is damaged or not a tar file; "
            f"delete it and load the dataset again."
        ) from None


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)  # None only for what is not a regular file (those are skipped before)
    return b"" if f is None else f.read(MAX_IMAGE_BYTES + 1)
