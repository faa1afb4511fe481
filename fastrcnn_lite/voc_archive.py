"""Extracting a VOC tar archive safely, with a completion marker written last.

Data-flow stage: **image** (getting the data). :mod:`fastrcnn_lite.download` fetches and
md5-checks an archive, then calls :func:`extract_archive`: every member is checked (no absolute
paths, no ``..``, no links that leave the folder, no device files), extracted with
``filter="data"``, and checked against its size in the archive; only then is the marker
``<root>/VOCdevkit/.extracted-<file>`` written, so a killed extraction is never taken for a
finished one.
"""

from __future__ import annotations

import json
import posixpath
import re
import tarfile
from pathlib import Path, PurePosixPath

from .checkpoint import atomic_write
from .cli import UserError

__all__ = ["extraction_marker", "extract_archive"]


def extraction_marker(root: str | Path, archive_name: str) -> Path:
    """``<root>/VOCdevkit/.extracted-<archive_name>``: written only after a complete extraction.

    No notebook: :func:`extract_archive` writes it, :func:`split_present` checks it.
    """
    return Path(root) / "VOCdevkit" / f".extracted-{archive_name}"


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Reject a tar member that could write outside the extraction folder."""
    name = PurePosixPath(member.name)
    bad = None
    if (
        name.is_absolute()
        or member.name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", member.name)
    ):
        bad = "an absolute path"
    elif ".." in name.parts:
        bad = "a '..' component"
    elif member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = name.parent if member.issym() else PurePosixPath()
        resolved = posixpath.normpath(str(base / target))
        if target.is_absolute() or resolved == ".." or resolved.startswith("../"):
            bad = f"a link to {member.linkname!r} outside the archive folder"
    elif not (member.isfile() or member.isdir()):
        bad = "a device or special file"
    if bad:
        raise UserError(
            f"Unsafe member {member.name!r} in {archive}: {bad}. Nothing was extracted; the archive "
            "is not a genuine VOC tar (delete it and download again)."
        )


def extract_archive(archive: str | Path, root: str | Path) -> Path:
    """Extract a tar archive into ``root`` after checking every member; returns ``root``.

    No notebook: :func:`fetch_and_extract` (and so :func:`download_voc`) calls it.

    The completion marker (:func:`extraction_marker`) is removed before anything is written
    and written last, once every regular file on disk has the size the archive gives it.

    Raises:
        ValueError: a member with an absolute path, ``..``, a link leaving ``root`` or a device
            file (checked before anything is written), a file that is not a tar archive, or an
            extracted file whose size differs from the archive's (a full disk).
    """
    archive, root = Path(archive), Path(root)
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as e:
        raise UserError(
            f"{archive} is not a readable tar archive ({e}); delete it and download again."
        ) from e
    marker = extraction_marker(root, archive.name)
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError) as e:
            raise UserError(
                f"{archive} is not a readable tar archive ({e}); delete it and download again."
            ) from e
        for member in members:
            _check_member(member, archive)
        root.mkdir(parents=True, exist_ok=True)
        marker.unlink(missing_ok=True)  # from now on the tree is not complete
        if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 / 3.11.4: members checked above
            tar.extractall(root, members=members)
        else:
            try:
                tar.extractall(root, members=members, filter="data")  # a second line of defence
            except tarfile.FilterError as e:
                raise UserError(f"Unsafe member in {archive}: {e}. Extraction stopped.") from e
    files = [m for m in members if m.isfile()]
    for member in files:
        path = root / member.name
        size = path.stat().st_size if path.is_file() else None
        if size != member.size:
            raise UserError(
                f"{path} has {size if size is not None else 'no'} bytes after extracting {archive}, "
                f"but the archive holds {member.size:,}. Is the disk full? Free space and run "
                "the command again (it extracts again)."
            )
    record = {"archive": archive.name, "files": len(files), "bytes": sum(m.size for m in files)}
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(marker, lambda f: f.write((json.dumps(record) + "\n").encode()))
    return root
