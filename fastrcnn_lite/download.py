"""Download PASCAL VOC: resumable, md5-checked, extracted safely into a VOCdevkit tree.

Data-flow stage: **image** (getting the data that :class:`~fastrcnn_lite.voc.VOCDataset`
reads). Not part of the paper; the paper trains on VOC 2007 trainval and tests on VOC 2007
test (section 4), and also uses VOC 2012 trainval (the "07+12" rows).

What happens for each archive (URLs, file names and md5 sums come from torchvision's
``torchvision.datasets.voc.DATASET_YEAR_DICT``, never re-typed here):

1. If ``<root>/VOCdevkit/VOC<year>`` already holds the split (its list file and every image and
   annotation it names) *and* the archive's completion marker
   ``<root>/VOCdevkit/.extracted-<file>`` exists, nothing is done.
2. Else, if ``<root>/downloads/<file>`` exists and its md5 matches, it is extracted again.
3. Else it is downloaded to ``<root>/downloads/<file>.part``. An existing ``.part`` file is
   resumed with an HTTP ``Range: bytes=<size>-`` request; a server that ignores the range
   (answers 200 with the whole file) makes the download restart from byte 0. A connection that
   drops (an error, or fewer bytes than the announced ``Content-Length``) keeps the ``.part``
   file and resumes from where it stopped, up to ``retries`` times; after that the command
   stops with the ``.part`` kept, and the next run resumes it. A short file is never md5-checked
   (so never deleted as corrupt).
4. The md5 of the finished ``.part`` is checked. Only a match renames it to ``<file>``; a
   mismatch deletes the ``.part`` (so the next run downloads afresh) and raises ValueError.
5. The tar archive is checked member by member (no absolute paths, no ``..``, no links that
   leave the folder, no device files) and extracted into ``<root>`` with ``filter="data"``.
   The completion marker is deleted first and written last, after every extracted file has
   been checked against its size in the archive: an extraction that is killed midway leaves
   no marker, so the next run extracts again instead of trusting a truncated file.

Command line::

    python -m fastrcnn_lite.download --root data/voc --year 2007   # trainval + test, ~900 MB
    python -m fastrcnn_lite.download --root data/voc --year 2012   # trainval, ~2 GB
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from .cli import UserError
from .progress import tqdm
from .voc import voc_dir
from .voc_archive import extract_archive, extraction_marker

__all__ = [
    "archive_for",
    "split_present",
    "extraction_marker",
    "md5sum",
    "download_file",
    "extract_archive",
    "fetch_and_extract",
    "download_voc",
]

# Which torchvision DATASET_YEAR_DICT entry holds each split.
_ARCHIVE_KEYS = {
    ("2007", "train"): "2007",
    ("2007", "val"): "2007",
    ("2007", "trainval"): "2007",
    ("2007", "test"): "2007-test",
    ("2012", "train"): "2012",
    ("2012", "val"): "2012",
    ("2012", "trainval"): "2012",
}
DEFAULT_IMAGE_SETS = {"2007": ("trainval", "test"), "2012": ("trainval",)}
CHUNK_SIZE = 1 << 20  # bytes read per step of the download loop
RETRIES = 3  # resumptions of a dropped connection within one run
# A connection that breaks mid-body: reset, timeout, the server closing early.
_DROPPED = (ConnectionError, TimeoutError, http.client.IncompleteRead, urllib.error.URLError)


def archive_for(year: str, image_set: str) -> dict:
    """The torchvision ``DATASET_YEAR_DICT`` entry (url, filename, md5, base_dir) of a split.

    Notebook 08 shows the archive (and its size) it is about to download.
    """
    from torchvision.datasets.voc import DATASET_YEAR_DICT  # imported late: it pulls in PIL etc.

    key = _ARCHIVE_KEYS.get((str(year), image_set))
    if key is None:
        if str(year) == "2012" and image_set == "test":
            hint = " VOC2012 test annotations are not public (the evaluation server scores them)."
        else:
            hint = ""
        raise UserError(
            f"No VOC archive for year={year!r}, image_set={image_set!r}; supported: "
            f"{sorted(_ARCHIVE_KEYS)}.{hint}"
        )
    return DATASET_YEAR_DICT[key]


def split_present(root: str | Path, year: str, image_set: str) -> bool:
    """True if ``<root>/VOCdevkit/VOC<year>`` has the split's list file and all its files.

    The archive that holds the split must carry its completion marker
    (:func:`extraction_marker`, written after every member was extracted and checked by size),
    and every id listed in ``ImageSets/Main/<image_set>.txt`` must have its
    ``JPEGImages/<id>.jpg`` and ``Annotations/<id>.xml``: a killed extraction is never taken
    for a finished one, even when its truncated files are all there.

    No notebook: :func:`download_voc` skips a split that is present.
    """
    if not extraction_marker(root, archive_for(year, image_set)["filename"]).is_file():
        return False
    folder = voc_dir(root, year)
    split = folder / "ImageSets" / "Main" / f"{image_set}.txt"
    if not split.is_file():
        return False
    ids = [line.strip() for line in split.read_text().splitlines() if line.strip()]
    return bool(ids) and all(
        (folder / "JPEGImages" / f"{i}.jpg").is_file()
        and (folder / "Annotations" / f"{i}.xml").is_file()
        for i in ids
    )


def md5sum(path: str | Path, chunk_size: int = CHUNK_SIZE) -> str:
    """Hex md5 of a file, read in chunks.

    No notebook: :func:`download_file` and :func:`fetch_and_extract` check archives with it.
    """
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _status(response) -> int:
    """HTTP status of a urlopen response; ``file://`` responses have none and count as 200."""
    status = getattr(response, "status", None)
    if status is None and hasattr(response, "getcode"):
        status = response.getcode()
    return 200 if status is None else int(status)


def _header(response, name: str) -> str | None:
    headers = getattr(response, "headers", None)
    return None if headers is None else headers.get(name)


def download_file(
    url: str,
    dest: str | Path,
    md5: str,
    *,
    urlopen: Callable = urllib.request.urlopen,
    progress: bool = True,
    timeout: float = 60.0,
    retries: int = RETRIES,
    log: Callable[[str], None] = print,
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part``, resuming, and check its md5.

    No notebook: :func:`fetch_and_extract` (and so :func:`download_voc`) calls it.

    Args:
        url: http(s) or file URL.
        dest: the final file; it appears only once its md5 matches.
        md5: the expected hex md5.
        urlopen: ``urlopen(request, timeout=...)`` returning a response with ``read(n)``,
            ``status`` (200 full body, 206 partial) and ``headers``; ``urllib.request.urlopen`` by
            default, a fake in the tests.
        progress: show a tqdm bar.
        retries: how many times a dropped connection is resumed within this call.
        log: where one-line messages go.

    Returns:
        ``dest``.

    Raises:
        UserError (a ValueError): the md5 of the complete file does not match (the ``.part`` is
            deleted), or the connection kept dropping (the ``.part`` is kept for the next run).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    if offset:
        log(f"resuming {dest.name} from byte {offset:,}")
    drops = 0
    while True:
        try:
            done = _fetch_into(url, part, urlopen, timeout, progress, dest.name, log)
        except _DROPPED as e:
            if isinstance(e, urllib.error.HTTPError):
                raise
            done, why = False, f"{type(e).__name__}: {e}"
        else:
            why = "the server closed the connection early"
        if done:
            break
        drops += 1
        size = part.stat().st_size if part.is_file() else 0
        if drops > retries:
            raise UserError(
                f"Download of {dest.name} from {url} keeps breaking ({why}); kept the "
                f"{size:,} bytes received in {part}. Run the command again to resume from there."
            )
        log(f"{dest.name}: connection dropped at byte {size:,} ({why}); resuming")
    actual = md5sum(part)
    if actual != md5:
        size = part.stat().st_size
        part.unlink()
        raise UserError(
            f"Corrupt download {dest.name} from {url}: md5 {actual} ({size:,} bytes) but expected {md5}. "
            f"Deleted {part} and did not extract it; run the command again to download it afresh."
        )
    os.replace(part, dest)
    return dest


def _fetch_into(url, part: Path, urlopen, timeout, progress, name, log) -> bool:
    """One request appending to ``part`` from its current size; True when the body is complete.

    False when fewer bytes came than ``Content-Length`` announced (the bytes received stay in
    ``part``); a dropped connection raises (and the bytes received also stay).
    """
    for _attempt in range(2):  # a second try only after a 206 that starts at the wrong byte
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # range starts at/after the end: .part is complete
                e.close()
                return True
            raise
        with response:
            status = _status(response)
            if offset and status == 206:
                match = re.match(r"bytes (\d+)-", _header(response, "Content-Range") or "")
                if match and int(match.group(1)) != offset:
                    log(f"server resumed {name} at byte {match.group(1)}, not {offset}: restarting")
                    part.unlink()
                    continue
                mode = "ab"
            elif status in (200, 206):
                if offset:
                    log(f"server ignored the range request for {name}: restarting from byte 0")
                offset, mode = 0, "wb"
            else:
                raise UserError(f"Unexpected HTTP status {status} while downloading {url}.")
            length = _header(response, "Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = 0
            with (
                open(part, mode) as f,
                tqdm(
                    total=None if expected is None else offset + expected,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=name,
                    disable=not progress,
                ) as bar,
            ):
                while block := response.read(CHUNK_SIZE):
                    f.write(block)
                    received += len(block)
                    bar.update(len(block))
            return expected is None or received >= expected
    return False


def fetch_and_extract(
    url: str,
    filename: str,
    md5: str,
    root: str | Path,
    *,
    urlopen: Callable = urllib.request.urlopen,
    progress: bool = True,
    keep_archive: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Get ``<root>/downloads/<filename>`` (reusing a verified copy, else downloading) and extract it.

    No notebook: :func:`download_voc` calls it once per archive.

    Returns:
        the archive path (deleted after extraction when ``keep_archive`` is False).
    """
    root = Path(root)
    archive = root / "downloads" / filename
    if archive.is_file():
        actual = md5sum(archive)
        if actual == md5:
            log(f"{filename}: found a verified copy at {archive}")
        else:
            log(
                f"{filename}: {archive} has md5 {actual}, expected {md5}: deleting it and downloading again"
            )
            archive.unlink()
    if not archive.is_file():
        log(f"{filename}: downloading {url}")
        download_file(url, archive, md5, urlopen=urlopen, progress=progress, log=log)
        log(f"{filename}: md5 {md5} ok")
    log(f"{filename}: extracting into {root}")
    extract_archive(archive, root)
    if not keep_archive:
        archive.unlink()
        log(f"{filename}: deleted the archive")
    return archive


def download_voc(
    root: str | Path,
    year: str = "2007",
    image_sets: Sequence[str] | None = None,
    *,
    urlopen: Callable = urllib.request.urlopen,
    progress: bool = True,
    keep_archives: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Make sure ``<root>/VOCdevkit/VOC<year>`` holds the requested splits.

    Notebook 08 downloads PASCAL VOC 2007 with this (and the ``download`` command runs it).

    Args:
        root: folder that will hold ``VOCdevkit/`` and ``downloads/``.
        year: ``"2007"`` or ``"2012"``.
        image_sets: splits to get; default ``("trainval", "test")`` for 2007 and ``("trainval",)``
            for 2012. ``train``/``val`` come with ``trainval`` (the same archive).
        urlopen, progress, log: see :func:`download_file`.
        keep_archives: keep the ``.tar`` files in ``<root>/downloads`` after extraction.

    Returns:
        ``<root>/VOCdevkit/VOC<year>``.
    """
    year = str(year)
    if year not in DEFAULT_IMAGE_SETS:
        raise UserError(
            f"year must be one of {sorted(DEFAULT_IMAGE_SETS)} (the VOC years the course uses); got {year!r}."
        )
    if isinstance(image_sets, str):
        image_sets = (image_sets,)
    image_sets = tuple(image_sets) if image_sets is not None else DEFAULT_IMAGE_SETS[year]
    # Group the splits by archive (train, val and trainval share one), keeping the order asked.
    archives: dict[str, tuple[dict, list[str]]] = {}
    for image_set in image_sets:
        entry = archive_for(year, image_set)
        archives.setdefault(entry["filename"], (entry, []))[1].append(image_set)
    root = Path(root)
    for filename, (entry, wanted) in archives.items():
        if all(split_present(root, year, s) for s in wanted):
            log(
                f"VOC{year} {'+'.join(wanted)}: already in {voc_dir(root, year)}, skipping {filename}"
            )
            continue
        fetch_and_extract(
            entry["url"],
            filename,
            entry["md5"],
            root,
            urlopen=urlopen,
            progress=progress,
            keep_archive=keep_archives,
            log=log,
        )
        missing = [s for s in wanted if not split_present(root, year, s)]
        if missing:
            raise UserError(
                f"{filename} was extracted into {root} but VOC{year} split(s) {missing} are still "
                f"incomplete under {voc_dir(root, year)}; expected the archive's {entry['base_dir']} tree."
            )
        log(f"VOC{year} {'+'.join(wanted)}: ready in {voc_dir(root, year)}")
    return voc_dir(root, year)


if __name__ == "__main__":
    from fastrcnn_lite.cli import run
    from fastrcnn_lite.download_cli import main

    run(main)
