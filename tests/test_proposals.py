"""Selective search, the proposal cache (hit, stale key, resume) and proposal recall."""

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fastrcnn_lite import proposal_cache, proposals, proposals_cli  # noqa: E402
from fastrcnn_lite.boxes import box_iou  # noqa: E402
from fastrcnn_lite.config import Config, resolve_path  # noqa: E402
from fastrcnn_lite.teaching.data_plots import plot_recall  # noqa: E402
from fastrcnn_lite.voc import VOCDataset  # noqa: E402

from .helpers import micro_root, write_voc_tree  # noqa: E402

# ---------------------------------------------------------------------------------------------
# selective_search on one image
# ---------------------------------------------------------------------------------------------


class _FakeSearch:
    """Stands in for OpenCV's SelectiveSearchSegmentation: returns fixed (x, y, w, h) rects."""

    def __init__(self, rects):
        self.rects = np.asarray(rects, dtype=np.int32).reshape(-1, 4)

    def setBaseImage(self, image):  # noqa: N802 (OpenCV's name)
        self.shape = image.shape

    def switchToSelectiveSearchFast(self):  # noqa: N802
        pass

    def switchToSelectiveSearchQuality(self):  # noqa: N802
        pass

    def process(self):
        return self.rects


def _fake_opencv(monkeypatch, rects):
    monkeypatch.setattr(
        proposals.cv2.ximgproc.segmentation,
        "createSelectiveSearchSegmentation",
        lambda: _FakeSearch(rects),
    )


def test_opencv_rects_become_continuous_xyxy_deduplicated_in_rank_order(monkeypatch):
    # (x, y, w, h) = (3, 4, 5, 6) covers columns 3..7 and rows 4..9 -> continuous (3, 4, 8, 10).
    rects = [[3, 4, 5, 6], [0, 0, 20, 10], [3, 4, 5, 6], [7, 1, 1, 9], [2, 2, 2, 2], [0, 0, 20, 10]]
    _fake_opencv(monkeypatch, rects)
    image = np.zeros((10, 20, 3), np.uint8)
    boxes = proposals.selective_search(image, min_size=2)
    # the duplicates go (first copy kept, order kept); (7, 1, 1, 9) is 1 px wide < min_size
    assert boxes.dtype == torch.float32
    assert boxes.tolist() == [[3, 4, 8, 10], [0, 0, 20, 10], [2, 2, 4, 4]]
    assert proposals.selective_search(image, min_size=0).tolist() == [
        [3, 4, 8, 10],
        [0, 0, 20, 10],
        [7, 1, 8, 10],
        [2, 2, 4, 4],
    ]
    assert proposals.selective_search(image, min_size=3).tolist() == [[3, 4, 8, 10], [0, 0, 20, 10]]
    assert proposals.selective_search(image, max_proposals=1).tolist() == [[3, 4, 8, 10]]


def test_scale_maps_boxes_back_and_clips(monkeypatch):
    _fake_opencv(monkeypatch, [[6, 8, 10, 12], [0, 0, 41, 21]])  # on the 2x image (40 x 20)
    boxes = proposals.selective_search(np.zeros((10, 20, 3), np.uint8), scale=2.0)
    assert boxes.tolist() == [[3, 4, 8, 10], [0, 0, 20, 10]]  # halved; 20.5 x 10.5 clipped


def test_a_dark_square_is_found_exactly():
    image = np.full((30, 40, 3), 230, np.uint8)
    image[5:15, 10:20] = (20, 40, 200)  # rows 5..14, columns 10..19 -> (10, 5, 20, 15)
    for mode in proposals.MODES:
        boxes = proposals.selective_search(image, mode)
        assert [10, 5, 20, 15] in boxes.tolist()
        assert [0, 0, 40, 30] in boxes.tolist()  # the last merge is the whole image
        assert len(torch.unique(boxes, dim=0)) == len(boxes)


def test_tensor_and_array_inputs_agree_and_results_are_reproducible():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    a = proposals.selective_search(image)
    b = proposals.selective_search(tensor)
    c = proposals.selective_search(image)  # same process, after other calls: same ranking
    assert len(a) > 10 and torch.equal(a, b) and torch.equal(a, c)
    assert (a[:, 0] >= 0).all() and (a[:, 2] <= 64).all() and (a[:, 3] <= 48).all()
    assert ((a[:, 2:] - a[:, :2]) >= 2).all()


def test_images_without_proposals_give_an_empty_tensor():
    # a constant image is one region: OpenCV gives the whole image, nothing else
    flat = np.full((24, 32, 3), 128, np.uint8)
    assert proposals.selective_search(flat).tolist() == [[0, 0, 32, 24]]
    # a 1x1 image: its only box is 1 px wide, below min_size -> no proposal at all
    empty = proposals.selective_search(np.zeros((1, 1, 3), np.uint8))
    assert empty.shape == (0, 4) and empty.dtype == torch.float32
    assert proposals.selective_search(flat, max_proposals=0).shape == (0, 4)
    # recall copes: the gt of an image without proposals counts as missed
    gts = [torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[0.0, 0, 32, 24]])]
    table = proposals.proposal_recall([empty, proposals.selective_search(flat)], gts)
    assert table.num_gt == 2 and table.at(1, 0.5) == pytest.approx(0.5)


def test_selective_search_errors_teach():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="mode must be one of"):
        proposals.selective_search(image, mode="slow")
    with pytest.raises(ValueError, match="np.stack"):
        proposals.selective_search(np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match="must be uint8"):
        proposals.selective_search(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="once per image"):
        proposals.selective_search(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"Tensor\[3, H, W\]"):
        proposals.selective_search(torch.zeros(8, 8, 3))
    with pytest.raises(TypeError, match="ndarray"):
        proposals.selective_search([[0, 0, 0]])
    with pytest.raises(ValueError, match="scale must be a positive"):
        proposals.selective_search(image, scale=0)
    with pytest.raises(ValueError, match="min_size"):
        proposals.selective_search(image, min_size=-1)
    with pytest.raises(ValueError, match="max_proposals"):
        proposals.selective_search(image, max_proposals=-5)
    with pytest.raises(ValueError, match="image is empty"):
        proposals.selective_search(np.zeros((0, 5, 3), np.uint8))


# ---------------------------------------------------------------------------------------------
# load_proposals: the cache
# ---------------------------------------------------------------------------------------------

IMAGES = {f"{i:06d}": ((40 + 4 * i, 48), [("dog", 5, 5, 30, 30, 0)]) for i in range(1, 6)}


@pytest.fixture
def tree(tmp_path):
    root = write_voc_tree(tmp_path / "voc", IMAGES)
    return root


@pytest.fixture
def cfg(tmp_path):
    return Config.embedded(cache_dir=str(tmp_path / "cache"), proposals_per_image=50, num_workers=0)


@pytest.fixture
def calls(monkeypatch):
    """Count the images the worker computes (in-process: num_workers=0)."""
    seen = []
    real = proposal_cache._compute_file

    def counting(task):
        seen.append(task[0])
        return real(task)

    monkeypatch.setattr(proposal_cache, "_compute_file", counting)
    return seen


def test_load_proposals_matches_selective_search_and_hits_the_cache(tree, cfg, calls):
    ds = VOCDataset(tree, "2007", "trainval")
    first = proposal_cache.load_proposals(ds, cfg, progress=False)
    assert sorted(calls) == list(range(len(ds)))
    for i, boxes in enumerate(first):
        expected = proposals.selective_search(
            ds[i][0], "fast", cfg.proposal_min_size, cfg.proposals_per_image
        )
        assert torch.equal(boxes, expected)
        assert 0 < len(boxes) <= 50
    folder = proposal_cache.proposal_cache_dir(ds, cfg)
    assert (
        folder.parent == cfg_path(cfg)
        and (folder / "proposals.pt").is_file()
        and not (folder / "parts").exists()
    )
    calls.clear()
    again = proposal_cache.load_proposals(ds, cfg, progress=False)
    assert calls == []  # a cache hit computes nothing
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    # min_size and proposals_per_image apply on load: no recomputation, no new folder
    fewer = proposal_cache.load_proposals(
        ds, cfg.replace(proposals_per_image=5, proposal_min_size=4), progress=False
    )
    assert calls == [] and all(len(b) <= 5 and ((b[:, 2:] - b[:, :2]) >= 4).all() for b in fewer)
    assert len(list(cfg_path(cfg).iterdir())) == 1


def cfg_path(cfg):
    return resolve_path(cfg.cache_dir) / "proposals"


def test_stale_key_recomputes_in_a_new_folder(tree, cfg, calls):
    ds = VOCDataset(tree, "2007", "trainval")
    proposal_cache.load_proposals(ds, cfg, progress=False)
    fast_dir = proposal_cache.proposal_cache_dir(ds, cfg)
    calls.clear()
    quality = proposal_cache.load_proposals(ds, cfg, mode="quality", progress=False)
    assert sorted(calls) == list(range(len(ds)))  # another mode: everything again
    assert proposal_cache.proposal_cache_dir(ds, cfg, "quality") != fast_dir
    assert torch.equal(quality[0], proposals.selective_search(ds[0][0], "quality", 2, 50))
    # the image list changes: one image more in the split -> a new key, all recomputed
    split = tree / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "trainval.txt"
    Image.fromarray(np.full((36, 36, 3), 60, np.uint8)).save(
        tree / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000009.jpg"
    )
    split.write_text(split.read_text() + "000009\n")
    bigger = VOCDataset(tree, "2007", "trainval")
    calls.clear()
    out = proposal_cache.load_proposals(bigger, cfg, progress=False)
    assert len(out) == 6 and sorted(calls) == list(range(6))
    assert proposal_cache.proposal_cache_dir(bigger, cfg) != fast_dir
    # an image is replaced (different bytes, new modification time) -> recomputed
    path = bigger.image_path(0)
    Image.fromarray(np.full((44, 48, 3), 90, np.uint8)).save(path)
    os.utime(path, ns=(10**18, 10**18))
    calls.clear()
    out = proposal_cache.load_proposals(bigger, cfg, progress=False)
    assert sorted(calls) == list(range(6)) and out[0].tolist() == [[0, 0, 48, 44]]


def test_an_interrupted_run_resumes_where_it_stopped(tree, cfg, monkeypatch):
    ds = VOCDataset(tree, "2007", "trainval")
    real = proposal_cache._compute_file
    seen = []

    def dies_after_two(task):
        if len(seen) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third image
        seen.append(task[0])
        return real(task)

    monkeypatch.setattr(proposal_cache, "_compute_file", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        proposal_cache.load_proposals(ds, cfg, progress=False)
    folder = proposal_cache.proposal_cache_dir(ds, cfg)
    assert sorted(p.stem for p in (folder / "parts").glob("*.npy")) == ds.ids[:2]
    assert not (folder / "proposals.pt").exists()
    (folder / "parts" / ".000003.npy.tmp").write_bytes(b"half a file")  # left by a killed write

    rest = []
    monkeypatch.setattr(
        proposal_cache, "_compute_file", lambda task: (rest.append(task[0]), real(task))[1]
    )
    resumed = proposal_cache.load_proposals(ds, cfg, progress=False)
    assert rest == [2, 3, 4]  # only the missing images
    fresh = proposal_cache.load_proposals(
        ds, cfg.replace(cache_dir=cfg.cache_dir + "-fresh"), progress=False
    )
    assert all(torch.equal(a, b) for a, b in zip(resumed, fresh, strict=True))


def test_a_corrupt_part_or_cache_file_is_recomputed(tree, cfg, calls):
    ds = VOCDataset(tree, "2007", "trainval")
    folder = proposal_cache.proposal_cache_dir(ds, cfg)
    (folder / "parts").mkdir(parents=True)
    (folder / "parts" / f"{ds.ids[1]}.npy").write_bytes(b"not numpy")
    with pytest.warns(RuntimeWarning, match=rf"{ds.ids[1]}\.npy is unreadable"):
        first = proposal_cache.load_proposals(ds, cfg, progress=False)
    assert sorted(calls) == list(range(len(ds)))
    (folder / "proposals.pt").write_bytes(b"truncated")
    calls.clear()
    with pytest.warns(RuntimeWarning, match=r"proposals\.pt is unreadable"):
        again = proposal_cache.load_proposals(ds, cfg, progress=False)
    assert sorted(calls) == list(range(len(ds)))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"])
def test_an_empty_or_truncated_cache_file_is_recomputed_with_a_warning(tree, cfg, calls, content):
    """A 0-byte proposals.pt (a disk that filled up) used to crash the error wrapper itself."""
    ds = VOCDataset(tree, "2007", "trainval")
    first = proposal_cache.load_proposals(ds, cfg, progress=False)
    final = proposal_cache.proposal_cache_dir(ds, cfg) / "proposals.pt"
    final.write_bytes(content)
    calls.clear()
    with pytest.warns(RuntimeWarning, match=r"proposal cache file .*proposals\.pt is unreadable"):
        again = proposal_cache.load_proposals(ds, cfg, progress=False)
    assert sorted(calls) == list(range(len(ds)))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    calls.clear()
    proposal_cache.load_proposals(ds, cfg, progress=False)  # rewritten: a plain cache hit again
    assert calls == []


def test_an_empty_part_file_is_recomputed_with_a_warning(tree, cfg, calls):
    ds = VOCDataset(tree, "2007", "trainval")
    parts = proposal_cache.proposal_cache_dir(ds, cfg) / "parts"
    parts.mkdir(parents=True)
    (parts / f"{ds.ids[2]}.npy").write_bytes(b"")
    with pytest.warns(RuntimeWarning, match=rf"{ds.ids[2]}\.npy is unreadable"):
        proposal_cache.load_proposals(ds, cfg, progress=False)
    assert sorted(calls) == list(range(len(ds)))


def _truncate_jpeg(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_jpeg_names_the_image(tree, cfg):
    ds = VOCDataset(tree, "2007", "trainval")
    _truncate_jpeg(ds.image_path(3))
    with pytest.raises(
        ValueError, match=r"Cannot decode image .*000004\.jpg \(image file is truncated"
    ):
        proposal_cache.load_proposals(ds, cfg, progress=False)


def test_a_truncated_jpeg_names_the_image_from_a_worker_process(tree, cfg):
    ds = VOCDataset(tree, "2007", "trainval")
    _truncate_jpeg(ds.image_path(1))
    with pytest.raises(ValueError, match=r"Cannot decode image .*000002\.jpg"):
        proposal_cache.load_proposals(ds, cfg, progress=False, num_workers=2)


def test_command_line_user_error_is_one_line(tree, tmp_path, monkeypatch, capsys):
    from fastrcnn_lite.cli import call

    monkeypatch.setenv("FASTRCNN_HOME", str(tmp_path))
    _truncate_jpeg(tree / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000001.jpg")
    argv = ["--profile", "full", "--data-root", str(tree), "--split", "trainval", "--workers", "0"]
    assert call(proposals_cli.main, argv, prog="proposals") == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "proposals: " in line]
    assert len(err) == 1 and err[0].startswith("proposals: error: Cannot decode image ")
    assert "000001.jpg (image file is truncated" in err[0]
    argv[3] = str(tmp_path / "nowhere")
    assert call(proposals_cli.main, argv, prog="proposals") == 2
    assert "No VOCdevkit tree at" in capsys.readouterr().err


def test_the_key_covers_scale_and_opencv_version(tree, cfg, monkeypatch):
    ds = VOCDataset(tree, "2007", "trainval")
    plain = proposal_cache.proposal_cache_dir(ds, cfg)
    assert plain.name.startswith("voc-2007-trainval-fast-")
    assert proposal_cache.proposal_cache_dir(ds, cfg, scale=2.0).name.startswith(
        "voc-2007-trainval-fast-x2-"
    )
    monkeypatch.setattr(proposal_cache.cv2, "__version__", "0.0.1")
    assert proposal_cache.proposal_cache_dir(ds, cfg) != plain


def test_worker_processes_give_the_same_proposals(tree, cfg):
    # OpenCV's thread pool is busy in this process first: a plain fork() of it could hang
    proposals.cv2.GaussianBlur(np.zeros((800, 800, 3), np.uint8), (31, 31), 5)
    ds = VOCDataset(tree, "2007", "trainval")
    serial = proposal_cache.load_proposals(ds, cfg, progress=False)
    pooled = proposal_cache.load_proposals(
        ds, cfg.replace(cache_dir=cfg.cache_dir + "-pool"), progress=False, num_workers=2
    )
    assert all(torch.equal(a, b) for a, b in zip(serial, pooled, strict=True))


def test_an_image_without_proposals_round_trips_through_the_cache(tmp_path, cfg):
    root = write_voc_tree(tmp_path / "tiny", {"000001": ((1, 1), []), "000002": ((20, 24), [])})
    ds = VOCDataset(root, "2007", "trainval")
    out = proposal_cache.load_proposals(ds, cfg, progress=False)
    again = proposal_cache.load_proposals(ds, cfg, progress=False)
    for result in (out, again):
        assert result[0].shape == (0, 4) and result[0].dtype == torch.float32 and len(result[1]) > 0


def test_load_proposals_errors_teach(tree, cfg):
    ds = VOCDataset(tree, "2007", "trainval")
    with pytest.raises(TypeError, match="VOCDataset"):
        proposal_cache.load_proposals([np.zeros((4, 4, 3))], cfg)
    with pytest.raises(TypeError, match="Config"):
        proposal_cache.load_proposals(ds, {"cache_dir": "x"})
    with pytest.raises(ValueError, match="mode must be one of"):
        proposal_cache.load_proposals(ds, cfg, mode="best")
    ds.image_path(0).unlink()
    with pytest.raises(FileNotFoundError, match="Image file not found"):
        proposal_cache.load_proposals(ds, cfg)


def test_command_line(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTRCNN_HOME", str(tmp_path))  # the cache goes to tmp_path/data/cache
    assert (
        proposals_cli.main(
            ["--profile", "full", "--data-root", str(tree), "--split", "trainval", "--workers", "0"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "trainval: 5 images" in out and "proposal recall: 5 gt boxes in 5 images" in out
    assert (tmp_path / "data" / "cache" / "proposals").is_dir()


# ---------------------------------------------------------------------------------------------
# Recall
# ---------------------------------------------------------------------------------------------


def _slow_recall(proposals_list, gts, n, t):
    found = total = 0
    for props, gt in zip(proposals_list, gts, strict=True):
        for g in gt:
            total += 1
            found += any(float(box_iou(g[None].double(), p[None].double())) >= t for p in props[:n])
    return found / total


def test_recall_hand_worked():
    gt = torch.tensor([[0.0, 0, 10, 10]])
    ranked = torch.tensor([[0.0, 0, 10, 5], [0.0, 0, 10, 8], [0.0, 0, 10, 10]])  # IoU 0.5, 0.8, 1.0
    table = proposals.proposal_recall(
        [ranked], [gt], iou_thresholds=(0.5, 0.7, 0.9), top_n=(1, 2, 3, 100)
    )
    assert table.recall.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]]
    assert table.at(2, 0.7) == 1.0 and table.at(1, 0.7) == 0.0
    assert table.num_gt == 1 and table.num_images == 1 and table.mean_proposals == 3
    assert table.average_recall().tolist() == pytest.approx([1 / 3, 2 / 3, 1, 1])
    assert "proposal recall: 1 gt boxes in 1 images" in str(table)


def test_recall_excludes_difficult_and_matches_a_slow_loop():
    g = torch.Generator().manual_seed(0)
    props, targets, plain = [], [], []
    for p in (0, 7, 40):  # one image without proposals
        xy = torch.rand(p, 2, generator=g) * 50
        props.append(torch.cat([xy, xy + 5 + torch.rand(p, 2, generator=g) * 40], dim=1))
        xy = torch.rand(4, 2, generator=g) * 50
        boxes = torch.cat([xy, xy + 5 + torch.rand(4, 2, generator=g) * 40], dim=1)
        difficult = torch.tensor([False, True, False, False])
        targets.append({"boxes": boxes, "difficult": difficult})
        plain.append(boxes[~difficult])
    table = proposals.proposal_recall(props, targets, top_n=(1, 5, 20, 100))
    assert table.num_gt == 9
    for m, n in enumerate(table.top_n):
        for k, t in enumerate(table.iou_thresholds.tolist()):
            assert table.recall[m, k].item() == pytest.approx(
                _slow_recall(props, plain, n, t), abs=1e-6
            )
    with_difficult = proposals.proposal_recall(props, targets, top_n=(5,), use_difficult=True)
    assert with_difficult.num_gt == 12
    assert with_difficult.recall[0, 0].item() == pytest.approx(
        _slow_recall(props, [t["boxes"] for t in targets], 5, 0.5), abs=1e-6
    )


def test_recall_errors_and_plot():
    gt = [torch.tensor([[0.0, 0, 10, 10]])]
    with pytest.raises(ValueError, match="must match image for image"):
        proposals.proposal_recall([torch.zeros(0, 4), torch.zeros(0, 4)], gt)
    with pytest.raises(ValueError, match=r"Tensor\[P, 4\]"):
        proposals.proposal_recall([torch.zeros(3, 5)], gt)
    with pytest.raises(TypeError, match="list of per-image"):
        proposals.proposal_recall(torch.zeros(1, 3, 4), gt)
    table = proposals.proposal_recall([torch.tensor([[0.0, 0, 10, 9]])], gt, top_n=(1, 10))
    with pytest.raises(ValueError, match="not in this table"):
        table.at(5, 0.5)
    with pytest.raises(ValueError, match="not in this table"):
        table.at(1, 0.42)
    left, right = plot_recall(table, label="fast")
    assert len(left.lines) == 2 and len(right.lines) == 2
    assert right.lines[0].get_label() == "fast: IoU 0.5"
    left, right = plot_recall(table, top_n=(10,), ious=(0.5,), linestyle="--")
    assert [line.get_label() for line in left.lines] == ["top 10"] and len(right.lines) == 1
    assert right.lines[0].get_linestyle() == "--"
    plt.close("all")


def test_real_photo_fast_mode():
    ds = VOCDataset(micro_root(), "2007", "test")
    image, target = ds[1]
    boxes = proposals.selective_search(image, "fast")
    height, width = target["size"]
    assert 500 < len(boxes) < 5000  # about 1,500 on a 500 x 375 photo
    assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all() and (boxes >= 0).all()
    best = box_iou(target["boxes"], boxes).max(dim=1).values
    assert (best >= 0.5).all(), best  # every object of this photo is covered by some proposal
