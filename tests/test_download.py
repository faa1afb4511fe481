"""The VOC download, fully offline: a tiny VOCdevkit tar served by a fake opener or a file:// URL.

Checked: fresh download + md5 + extraction, resume with an HTTP Range request (only the missing
bytes are asked for), a server that ignores Range, a dropped connection, a corrupt archive
(rejected, deleted, not extracted), an already-extracted tree (no request at all), and tar
members that try to leave the folder."""

import hashlib
import http.server
import io
import tarfile
import threading
import urllib.error

import pytest

from fastrcnn_lite import download, download_cli
from fastrcnn_lite.download import (
    archive_for,
    download_file,
    download_voc,
    extract_archive,
    fetch_and_extract,
    split_present,
)
from fastrcnn_lite.voc import VOCDataset

IDS = {"trainval": ["000005", "000007"], "train": ["000005"], "test": ["000001", "000004"]}


def annotation(image_id):
    return (
        f"<annotation><filename>{image_id}.jpg</filename><size><width>50</width><height>40</height>"
        "<depth>3</depth></size><object><name>dog</name><difficult>0</difficult><bndbox><xmin>1</xmin>"
        "<ymin>2</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )


def make_tar(splits=("trainval",), year="2007", extra=()):
    """A VOCdevkit/VOC<year> tree as tar bytes; ``extra`` adds (TarInfo, bytes) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        base = f"VOCdevkit/VOC{year}"
        written = set()
        for split in splits:
            for image_id in sorted(set(IDS[split]) - written):
                written.add(image_id)
                add(
                    f"{base}/JPEGImages/{image_id}.jpg",
                    b"\xff\xd8 not really a jpeg " + image_id.encode() * 200,
                )
                add(f"{base}/Annotations/{image_id}.xml", annotation(image_id).encode())
            add(
                f"{base}/ImageSets/Main/{split}.txt", "".join(f"{i}\n" for i in IDS[split]).encode()
            )
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def md5(data):
    return hashlib.md5(data).hexdigest()


class FakeResponse(io.BytesIO):
    def __init__(self, data, status, headers, fail_after=None):
        super().__init__(data)
        self.status = status
        self.headers = headers
        self.fail_after = fail_after
        self.sent = 0

    def read(self, n=-1):
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise ConnectionResetError("connection dropped (simulated)")
        block = super().read(n)
        self.sent += len(block)
        return block


class FakeOpener:
    """Serves ``files`` {url: bytes}, honouring Range unless ``ignore_range``; records requests."""

    def __init__(self, files, ignore_range=False, fail_after=None):
        self.files = files
        self.ignore_range = ignore_range
        self.fail_after = fail_after
        self.ranges = []  # the Range header of each request (None = whole file)
        self.bytes_sent = 0

    def __call__(self, request, timeout=None):
        data = self.files[request.full_url]
        rng = request.get_header("Range")
        self.ranges.append(rng)
        fail_after, self.fail_after = self.fail_after, None  # drop only the first connection
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").removesuffix("-"))
            if start >= len(data):
                raise urllib.error.HTTPError(
                    request.full_url, 416, "Range Not Satisfiable", {}, io.BytesIO()
                )
            body = data[start:]
            headers = {
                "Content-Length": str(len(body)),
                "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
            }
            status = 206
        else:
            body, headers, status = data, {"Content-Length": str(len(data))}, 200
        self.bytes_sent += len(body) if fail_after is None else min(fail_after, len(body))
        return FakeResponse(body, status, headers, fail_after)


URL = "https://example.invalid/VOCtrainval_06-Nov-2007.tar"
NAME = "VOCtrainval_06-Nov-2007.tar"


def quiet(_message):
    pass


def test_fresh_download_extracts_a_readable_tree(tmp_path):
    data = make_tar()
    opener = FakeOpener({URL: data})
    messages = []
    archive = fetch_and_extract(
        URL, NAME, md5(data), tmp_path, urlopen=opener, progress=False, log=messages.append
    )
    assert archive == tmp_path / "downloads" / NAME and archive.read_bytes() == data
    assert not (tmp_path / "downloads" / f"{NAME}.part").exists()
    assert opener.ranges == [None]
    assert split_present(tmp_path, "2007", "trainval") and not split_present(
        tmp_path, "2007", "test"
    )
    ds = VOCDataset(tmp_path, "2007", "trainval")
    assert ds.ids == IDS["trainval"]
    assert ds.load_target(0)["boxes"].tolist() == [[0.0, 1.0, 30.0, 20.0]]
    assert any("md5" in m and "ok" in m for m in messages)


def test_resume_requests_only_the_missing_bytes(tmp_path):
    data = make_tar()
    part = tmp_path / "downloads" / f"{NAME}.part"
    part.parent.mkdir()
    part.write_bytes(data[:1000])
    opener = FakeOpener({URL: data})
    fetch_and_extract(URL, NAME, md5(data), tmp_path, urlopen=opener, progress=False, log=quiet)
    assert opener.ranges == ["bytes=1000-"]
    assert opener.bytes_sent == len(data) - 1000
    assert (tmp_path / "downloads" / NAME).read_bytes() == data
    assert split_present(tmp_path, "2007", "trainval")


def test_dropped_connection_leaves_a_part_file_that_the_next_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CHUNK_SIZE", 1024)
    data = make_tar()
    opener = FakeOpener({URL: data}, fail_after=3 * 1024)
    dest = tmp_path / "downloads" / NAME
    with pytest.raises(
        ValueError, match=r"keeps breaking \(ConnectionResetError.*kept the 3,072 bytes"
    ):
        download_file(URL, dest, md5(data), urlopen=opener, progress=False, log=quiet, retries=0)
    part = tmp_path / "downloads" / f"{NAME}.part"
    assert part.stat().st_size == 3 * 1024 and not dest.exists()
    download_file(URL, dest, md5(data), urlopen=opener, progress=False, log=quiet)
    assert opener.ranges == [None, "bytes=3072-"]
    assert dest.read_bytes() == data and not part.exists()


def test_dropped_connection_is_resumed_within_the_same_run(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CHUNK_SIZE", 1024)
    data = make_tar()
    opener = FakeOpener({URL: data}, fail_after=3 * 1024)
    messages = []
    dest = download_file(
        URL, tmp_path / NAME, md5(data), urlopen=opener, progress=False, log=messages.append
    )
    assert opener.ranges == [None, "bytes=3072-"] and dest.read_bytes() == data
    assert any("connection dropped at byte 3,072" in m for m in messages)


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    data = make_tar()
    part = tmp_path / "downloads" / f"{NAME}.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 700)  # a stale prefix that must not stay in front of the file
    opener = FakeOpener({URL: data}, ignore_range=True)
    messages = []
    download_file(
        URL,
        tmp_path / "downloads" / NAME,
        md5(data),
        urlopen=opener,
        progress=False,
        log=messages.append,
    )
    assert opener.ranges == ["bytes=700-"]  # asked for a range, got the whole file (200)
    assert (tmp_path / "downloads" / NAME).read_bytes() == data
    assert any("ignored the range request" in m for m in messages)


def test_file_url_with_real_urlopen(tmp_path):
    # urllib's file:// handler ignores Range and reports no status: the same clean restart.
    data = make_tar()
    source = tmp_path / "mirror" / NAME
    source.parent.mkdir()
    source.write_bytes(data)
    part = tmp_path / "root" / "downloads" / f"{NAME}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:500])
    fetch_and_extract(
        source.as_uri(), NAME, md5(data), tmp_path / "root", progress=False, log=quiet
    )
    assert (tmp_path / "root" / "downloads" / NAME).read_bytes() == data
    assert split_present(tmp_path / "root", "2007", "trainval")


def test_complete_part_file_answered_416_is_verified_and_used(tmp_path):
    data = make_tar()
    part = tmp_path / "downloads" / f"{NAME}.part"
    part.parent.mkdir()
    part.write_bytes(data)
    opener = FakeOpener({URL: data})
    fetch_and_extract(URL, NAME, md5(data), tmp_path, urlopen=opener, progress=False, log=quiet)
    assert opener.ranges == [f"bytes={len(data)}-"] and opener.bytes_sent == 0
    assert split_present(tmp_path, "2007", "trainval")


def test_corrupt_archive_is_rejected_deleted_and_not_extracted(tmp_path):
    data = make_tar()
    corrupted = bytearray(data)
    corrupted[600] ^= 0xFF  # a byte inside the first file's contents (its header is bytes 0-511)
    corrupted = bytes(corrupted)
    opener = FakeOpener({URL: corrupted})
    message = (
        rf"Corrupt download {NAME} .*md5 {md5(corrupted)} .*expected {md5(data)}\. Deleted .*\.part"
    )
    with pytest.raises(ValueError, match=message):
        fetch_and_extract(URL, NAME, md5(data), tmp_path, urlopen=opener, progress=False, log=quiet)
    assert list((tmp_path / "downloads").iterdir()) == []  # neither .part nor the final name
    assert not (tmp_path / "VOCdevkit").exists()
    # the next run downloads afresh (no Range: nothing left to resume)
    opener.files[URL] = data
    fetch_and_extract(URL, NAME, md5(data), tmp_path, urlopen=opener, progress=False, log=quiet)
    assert opener.ranges == [None, None] and split_present(tmp_path, "2007", "trainval")


def test_verified_archive_is_reextracted_without_fetching(tmp_path):
    data = make_tar()
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / NAME).write_bytes(data)
    opener = FakeOpener({URL: data})
    fetch_and_extract(URL, NAME, md5(data), tmp_path, urlopen=opener, progress=False, log=quiet)
    assert opener.ranges == [] and split_present(tmp_path, "2007", "trainval")
    # a damaged archive at the final name is replaced by a fresh download
    (tmp_path / "downloads" / NAME).write_bytes(b"damaged")
    fetch_and_extract(URL, NAME, md5(data), tmp_path, urlopen=opener, progress=False, log=quiet)
    assert opener.ranges == [None] and (tmp_path / "downloads" / NAME).read_bytes() == data


def _member(name, type_=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "member, reason",
    [
        (_member("../evil.txt"), "a '..' component"),
        (_member("VOCdevkit/../../evil.txt"), "a '..' component"),
        (_member("/tmp/evil.txt"), "an absolute path"),
        (
            _member("VOCdevkit/link", tarfile.SYMTYPE, "../../etc/passwd"),
            "a link to '../../etc/passwd'",
        ),
        (_member("VOCdevkit/hard", tarfile.LNKTYPE, "/etc/passwd"), "a link to '/etc/passwd'"),
        (_member("VOCdevkit/dev", tarfile.CHRTYPE), "a device or special file"),
    ],
)
def test_path_traversal_member_is_rejected_before_anything_is_written(tmp_path, member, reason):
    payload = b"pwned" if member.isfile() else None
    if payload is not None:
        member.size = len(payload)
    archive = tmp_path / "bad.tar"
    archive.write_bytes(make_tar(extra=[(member, payload)]))
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=rf"Unsafe member .* {reason}.*Nothing was extracted"):
        extract_archive(archive, root)
    assert not root.exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_links_inside_the_tree_are_allowed(tmp_path):
    archive = tmp_path / "ok.tar"
    link = _member("VOCdevkit/VOC2007/alias.txt", tarfile.SYMTYPE, "ImageSets/Main/trainval.txt")
    archive.write_bytes(make_tar(extra=[(link, None)]))
    extract_archive(archive, tmp_path / "root")
    assert (tmp_path / "root" / "VOCdevkit" / "VOC2007" / "alias.txt").read_text().split() == IDS[
        "trainval"
    ]


def test_not_a_tar_archive(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a readable tar archive"):
        extract_archive(tmp_path / "x.tar", tmp_path)


@pytest.fixture
def fake_voc2007(monkeypatch):
    """Point torchvision's DATASET_YEAR_DICT entries for 2007 at local tars; returns the opener."""
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    files = {}
    for key, split in (("2007", "trainval"), ("2007-test", "test")):
        data = make_tar(splits=("trainval", "train") if split == "trainval" else ("test",))
        entry = dict(
            DATASET_YEAR_DICT[key], url=f"https://example.invalid/{key}.tar", md5=md5(data)
        )
        monkeypatch.setitem(DATASET_YEAR_DICT, key, entry)
        files[entry["url"]] = data
    return FakeOpener(files)


def test_download_voc_gets_both_2007_archives_then_skips(tmp_path, fake_voc2007):
    folder = download_voc(tmp_path, "2007", urlopen=fake_voc2007, progress=False, log=quiet)
    assert folder == tmp_path / "VOCdevkit" / "VOC2007"
    assert split_present(tmp_path, "2007", "trainval") and split_present(tmp_path, "2007", "test")
    assert len(fake_voc2007.ranges) == 2
    # everything is there: a second run asks for nothing
    messages = []
    download_voc(
        tmp_path,
        "2007",
        ["train", "trainval", "test"],
        urlopen=fake_voc2007,
        progress=False,
        log=messages.append,
    )
    assert len(fake_voc2007.ranges) == 2
    assert any("already in" in m and "skipping" in m for m in messages)


def test_already_extracted_tree_is_skipped_without_any_request(tmp_path):
    archive = tmp_path / NAME  # the trainval archive's own name: its marker says it is complete
    archive.write_bytes(make_tar(splits=("trainval",)))
    extract_archive(archive, tmp_path)

    def no_network(request, timeout=None):
        raise AssertionError(f"unexpected request for {request.full_url}")

    download_voc(tmp_path, "2007", "trainval", urlopen=no_network, progress=False, log=quiet)
    # a half-extracted tree (a listed image missing) is not taken as done
    (tmp_path / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000007.jpg").unlink()
    assert not split_present(tmp_path, "2007", "trainval")
    with pytest.raises(AssertionError, match="unexpected request"):
        download_voc(tmp_path, "2007", "trainval", urlopen=no_network, progress=False, log=quiet)


def test_archive_that_lacks_the_split_is_reported(tmp_path, fake_voc2007):
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    wrong = make_tar(splits=("trainval",))  # served as the *test* archive
    url = DATASET_YEAR_DICT["2007-test"]["url"]
    fake_voc2007.files[url] = wrong
    DATASET_YEAR_DICT["2007-test"]["md5"] = md5(
        wrong
    )  # the fixture's copy, restored by monkeypatch
    with pytest.raises(ValueError, match=r"split\(s\) \['test'\] are still incomplete"):
        download_voc(tmp_path, "2007", ["test"], urlopen=fake_voc2007, progress=False, log=quiet)


def test_archive_for_uses_torchvision_table():
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    assert archive_for("2007", "test") is DATASET_YEAR_DICT["2007-test"]
    assert archive_for("2007", "val") is DATASET_YEAR_DICT["2007"]
    assert archive_for("2012", "trainval") is DATASET_YEAR_DICT["2012"]
    with pytest.raises(ValueError, match="VOC2012 test annotations are not public"):
        archive_for("2012", "test")
    with pytest.raises(ValueError, match="year must be one of"):
        download_voc("unused", "2010")


def test_command_line_with_file_urls(tmp_path, monkeypatch, capsys):
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    data = make_tar(splits=("trainval",))
    source = tmp_path / "mirror.tar"
    source.write_bytes(data)
    monkeypatch.setitem(
        DATASET_YEAR_DICT,
        "2007",
        dict(DATASET_YEAR_DICT["2007"], url=source.as_uri(), md5=md5(data)),
    )
    root = tmp_path / "voc"
    assert (
        download_cli.main(
            ["--root", str(root), "--year", "2007", "--image-sets", "trainval", "--no-progress"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"PASCAL VOC 2007 is in {(root / 'VOCdevkit' / 'VOC2007').resolve()}" in out
    assert "downloading file://" in out and "extracting" in out
    assert VOCDataset(root, "2007", "trainval").ids == IDS["trainval"]


# --- a real HTTP server that drops the connection (issue 9) ------------------------------------


class _DroppingHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``data`` with Range support; the first ``drops`` answers announce the whole
    length but send only ``cut`` bytes, then close the connection."""

    data = b""
    cut = 0
    drops = 1
    ranges: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.removeprefix("bytes=").removesuffix("-")) if rng else 0
        body = self.data[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        if rng:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
            )
        self.end_headers()
        if type(self).drops > 0:
            type(self).drops -= 1
            body = body[: self.cut]
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def dropping_server():
    handler = type("Handler", (_DroppingHandler,), {"ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler, f"http://127.0.0.1:{server.server_address[1]}/{NAME}"
    finally:
        server.shutdown()
        server.server_close()


def test_server_closing_early_keeps_the_part_and_resumes(tmp_path, dropping_server):
    """Fewer bytes than Content-Length is a dropped connection, not a corrupt file."""
    _, handler, url = dropping_server
    data = make_tar()
    handler.data, handler.cut, handler.drops = data, len(data) * 9 // 10, 1
    dest = tmp_path / "downloads" / NAME
    part = dest.with_name(NAME + ".part")
    with pytest.raises(
        ValueError, match=r"keeps breaking \(the server closed the connection early"
    ):
        download_file(url, dest, md5(data), progress=False, log=quiet, retries=0)
    assert part.stat().st_size == len(data) * 9 // 10 and not dest.exists()  # kept, not deleted
    download_file(url, dest, md5(data), progress=False, log=quiet)  # the next run resumes
    assert handler.ranges == [None, f"bytes={len(data) * 9 // 10}-"]
    assert dest.read_bytes() == data and not part.exists()


def test_server_closing_early_is_resumed_in_the_same_run(tmp_path, dropping_server):
    _, handler, url = dropping_server
    data = make_tar()
    handler.data, handler.cut, handler.drops = data, 1000, 2  # two drops, then the rest
    dest = download_file(url, tmp_path / NAME, md5(data), progress=False, log=quiet)
    assert handler.ranges == [None, "bytes=1000-", "bytes=2000-"]
    assert dest.read_bytes() == data


# --- extraction: complete only when the marker is written last (issue 9) -------------------------


def test_killed_extraction_is_extracted_again(tmp_path, monkeypatch, fake_voc2007):
    data = fake_voc2007.files["https://example.invalid/2007.tar"]
    archive = tmp_path / "downloads" / NAME
    archive.parent.mkdir()
    archive.write_bytes(data)  # a verified copy from an earlier run
    jpeg = tmp_path / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000007.jpg"
    real_extractall = tarfile.TarFile.extractall

    def killed(self, path, members=None, **kwargs):
        real_extractall(self, path, members=members, **kwargs)
        jpeg.write_bytes(jpeg.read_bytes()[:3])  # the file being written when the kill came
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", killed)
    with pytest.raises(KeyboardInterrupt):
        extract_archive(archive, tmp_path)
    monkeypatch.setattr(tarfile.TarFile, "extractall", real_extractall)
    assert not download.extraction_marker(tmp_path, NAME).exists()
    assert not split_present(tmp_path, "2007", "trainval")  # every file is there, but truncated

    def no_network(request, timeout=None):
        raise AssertionError(f"unexpected request for {request.full_url}")

    messages = []
    download_voc(
        tmp_path, "2007", "trainval", urlopen=no_network, progress=False, log=messages.append
    )
    assert not any("skipping" in m for m in messages)
    with tarfile.open(archive) as tar:
        expected = tar.extractfile("VOCdevkit/VOC2007/JPEGImages/000007.jpg").read()
    assert jpeg.read_bytes() == expected
    assert split_present(tmp_path, "2007", "trainval")


def test_extracted_file_of_the_wrong_size_is_reported(tmp_path, monkeypatch):
    archive = tmp_path / NAME
    archive.write_bytes(make_tar(splits=("trainval",)))
    real_extractall = tarfile.TarFile.extractall
    jpeg = tmp_path / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000007.jpg"

    def short(self, path, members=None, **kwargs):  # as a full disk leaves it, without an error
        real_extractall(self, path, members=members, **kwargs)
        jpeg.write_bytes(b"")

    monkeypatch.setattr(tarfile.TarFile, "extractall", short)
    with pytest.raises(ValueError, match=r"000007\.jpg has 0 bytes after extracting .* holds"):
        extract_archive(archive, tmp_path)
    assert not download.extraction_marker(tmp_path, NAME).exists()
