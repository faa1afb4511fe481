"""The comparison of R-CNN, SPPnet and Fast R-CNN: speedups, the table, the figures, the report files."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from fastrcnn_lite.experiments.compare import (
    SYSTEMS,
    _time_all,
    add_speedups,
    compare_detectors,
    comparison_table,
    format_bytes,
    format_markdown,
    format_seconds,
    map_difference,
    plot_comparison,
    plot_side_by_side,
    save_report,
)
from fastrcnn_lite.teaching.paper import TABLE4_VGG16

from .helpers import REPO


class FakeDataset:
    """Two 20 x 30 images with one gt box each (what the side-by-side figure reads)."""

    classes = ("circle", "square")

    def __init__(self, n: int = 2):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def load_image(self, i: int) -> torch.Tensor:
        return torch.full((3, 20, 30), 0.1 * (i + 1))

    def load_target(self, i: int) -> dict:
        return {
            "boxes": torch.tensor([[2.0, 3.0, 12.0, 15.0]]),
            "labels": torch.tensor([1 + i % 2]),
            "difficult": torch.tensor([False]),
        }


def fake_result() -> dict:
    seconds = {"R-CNN": 12.0, "SPPnet": 1.5, "Fast R-CNN": 0.12, "Fast R-CNN + SVD": 0.08}
    systems = {
        name: {
            "map": m, "ap": {"circle": m, "square": m}, "train_seconds": t, "test_seconds_per_image": seconds[name],
            "cache_bytes": b, "parameters": p, "from_cache": True, "train_stages": {},
        }
        for name, m, t, b, p in (
            ("R-CNN", 0.61, 900.0, 35 * 2**20 + 2**19, 1_500_000),
            ("SPPnet", 0.58, 300.0, 4_100_000, 1_700_000),
            ("Fast R-CNN", 0.71, 150.0, 0, 1_200_000),
            ("Fast R-CNN + SVD", 0.70, 150.5, 0, 1_000_000),
        )
    }  # fmt: skip
    dataset = FakeDataset()
    detections = {
        name: [
            {"boxes": torch.tensor([[2.0, 3, 12, 15], [5, 5, 25, 18]]), "scores": torch.tensor([0.9, -0.5]), "labels": torch.tensor([1, 2])}
            for _ in range(len(dataset))
        ]
        for name in SYSTEMS
    }  # fmt: skip
    return {
        "systems": systems,
        "setting": {
            "dataset": "embedded",
            "backbone": "small",
            "num_train_images": 400,
            "num_test_images": 200,
            "proposals_per_image": 180.4,
            "threads": 2,
            "device": "cpu",
            "test_scales": [192],
        },  # fmt: skip
        "detections": detections,
        "targets": [dataset.load_target(i) for i in range(len(dataset))],
        "test_ds": dataset,
    }


def test_format_helpers_by_hand():
    assert format_seconds(0.01234) == "0.0123 s"
    assert format_seconds(4.567) == "4.57 s"
    assert format_seconds(95.2) == "95 s"
    assert format_seconds(738.0) == "12.3 min"
    assert format_seconds(9.5 * 3600) == "9.5 h"
    assert format_seconds(math.nan) == "n/a"
    assert format_bytes(0) == "0"
    assert format_bytes(512) == "512 B"
    assert format_bytes(35 * 2**20 + 2**19) == "35.5 MiB"
    assert format_bytes(5 * 2**29) == "2.5 GiB"
    assert format_bytes(1536) == "1.5 KiB"


def test_speedups_are_rcnn_time_over_each_time():
    systems = {"R-CNN": {"test_seconds_per_image": 47.0}, "SPPnet": {"test_seconds_per_image": 2.35},
               "Fast R-CNN": {"test_seconds_per_image": 0.32}}  # fmt: skip
    add_speedups(systems)
    assert systems["R-CNN"]["speedup"] == 1.0
    assert systems["SPPnet"]["speedup"] == pytest.approx(20.0)
    assert systems["Fast R-CNN"]["speedup"] == pytest.approx(146.875)
    with pytest.raises(ValueError, match="relative to R-CNN"):
        add_speedups({"SPPnet": {"test_seconds_per_image": 1.0}})
    with pytest.raises(ValueError, match="positive number of seconds"):
        add_speedups(
            {"R-CNN": {"test_seconds_per_image": 1.0}, "SPPnet": {"test_seconds_per_image": 0.0}}
        )


def test_table_puts_the_paper_next_to_ours():
    rows = comparison_table(fake_result())
    assert [r["system"] for r in rows] == list(SYSTEMS)
    by_name = {r["system"]: r for r in rows}
    # Speedups recomputed from the test times: 12 / 1.5 = 8, 12 / 0.12 = 100, 12 / 0.08 = 150.
    assert [by_name[n]["speedup"] for n in SYSTEMS] == ["1.0x", "8.0x", "100.0x", "150.0x"]
    assert by_name["Fast R-CNN"]["mAP"] == "0.710"
    assert by_name["Fast R-CNN"]["paper mAP"] == "0.669"
    assert by_name["Fast R-CNN + SVD"]["paper speedup"] == "213x"
    assert by_name["SPPnet"]["paper test / image"] == "2.3 s"
    assert by_name["R-CNN"]["paper train"] == "84 h"
    assert by_name["R-CNN"]["train time"] == "15.0 min"
    assert by_name["R-CNN"]["feature cache"] == "35.5 MiB"
    assert by_name["Fast R-CNN"]["feature cache"] == "0"
    assert by_name["SPPnet"]["parameters"] == "1.70 M"
    assert all(
        list(r) == list(rows[0]) for r in rows
    )  # one set of columns (the summary page needs it)
    for name in SYSTEMS:
        assert by_name[name]["paper mAP"] == f"{TABLE4_VGG16[name]['map'] / 100:.3f}"
    markdown = format_markdown(rows).splitlines()
    assert len(markdown) == 2 + len(SYSTEMS) and markdown[0].startswith("| system")


def test_table_rejects_an_incomplete_result():
    result = fake_result()
    del result["systems"]["SPPnet"]
    with pytest.raises(ValueError, match="lacks \\['SPPnet'\\]"):
        comparison_table(result)
    with pytest.raises(ValueError, match="compare_detectors returns"):
        comparison_table([1, 2])


def test_plot_shows_ours_and_the_paper():
    result = fake_result()
    fig = plot_comparison(result)
    axes = fig.axes
    assert len(axes) == 4
    assert [ax.get_yscale() for ax in axes] == ["linear", "log", "log", "log"]
    ours_map = [p.get_height() for p in axes[0].patches[: len(SYSTEMS)]]
    paper_map = [p.get_height() for p in axes[0].patches[len(SYSTEMS) :]]
    assert ours_map == pytest.approx([0.61, 0.58, 0.71, 0.70])
    assert paper_map == pytest.approx([TABLE4_VGG16[n]["map"] / 100 for n in SYSTEMS])
    ours_speedup = [p.get_height() for p in axes[2].patches[: len(SYSTEMS)]]
    assert ours_speedup == pytest.approx([1.0, 8.0, 100.0, 150.0])
    ours_train = [p.get_height() for p in axes[3].patches[: len(SYSTEMS)]]
    assert ours_train == pytest.approx([6.0, 2.0, 1.0, 150.5 / 150.0])
    labels = [t.get_text() for t in axes[3].texts]  # ours, written on the bars
    assert labels == ["6.0x", "2.0x", "1.0x", "1.0x"]
    assert [t.get_text() for t in axes[2].texts] == ["1.0x", "8.0x", "100x", "150x"]
    plt.close(fig)


def test_ratio_labels():
    from fastrcnn_lite.experiments.compare_report import _ratio

    assert [_ratio(v) for v in (0.0305, 0.76, 1.07, 9.96, 146.2)] == [
        "0.03x",
        "0.76x",
        "1.1x",
        "10.0x",
        "146x",
    ]


def test_side_by_side_draws_gt_and_confident_detections():
    result = fake_result()
    fig = plot_side_by_side(result, indices=(0, 1), systems=("R-CNN", "Fast R-CNN"))
    assert len(fig.axes) == 4
    for ax in fig.axes:
        # one gt box + the one detection scoring above the threshold (0.9 > 0 and > 0.5; -0.5 is not)
        assert len(ax.patches) == 2
    assert fig.axes[0].get_title().startswith("R-CNN")
    plt.close(fig)


def test_save_report_writes_what_the_summary_page_reads(tmp_path, monkeypatch):
    result = fake_result()
    json_path, png_path = save_report(result, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["rows"] == comparison_table(result)
    assert (
        isinstance(data["note"], str)
        and "\n" not in data["note"]
        and "excludes proposals" in data["note"]
    )
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # tools/run_course.py builds the summary page from these two files.
    spec = importlib.util.spec_from_file_location("run_course", REPO / "tools" / "run_course.py")
    run_course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_course)
    monkeypatch.setattr(run_course, "REPORTS", tmp_path)
    index = run_course.write_summary(
        [{"name": "07_comparison", "title": "Comparison", "seconds": 60.0, "error": None}]
    )
    page = index.read_text()
    assert (
        "<th>paper speedup</th>" in page and "<td>100.0x</td>" in page and "comparison.png" in page
    )


def test_save_report_default_folder_is_fastrcnn_reports_so_tests_spare_the_users_reports(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("FASTRCNN_REPORTS", str(tmp_path / "scratch"))
    monkeypatch.chdir(tmp_path)
    json_path, png_path = save_report(fake_result())
    assert json_path.parent == png_path.parent == tmp_path / "scratch"
    assert not (tmp_path / "reports").exists()


def test_pytest_runs_point_reports_away_from_the_repository():
    # conftest.py sets this for the unit tests and the nbval kernels alike.
    assert Path(os.environ["FASTRCNN_REPORTS"]).resolve() != (REPO / "reports").resolve()


def test_detectors_are_timed_in_turn_on_each_image():
    dataset = FakeDataset(3)
    calls = []

    def slow(image, props):
        calls.append("slow")
        time.sleep(0.02)
        return {
            "boxes": props,
            "scores": torch.ones(len(props)),
            "labels": torch.ones(len(props), dtype=torch.long),
        }

    def fast(image, props):
        calls.append("fast")
        return {
            "boxes": props[:0],
            "scores": torch.zeros(0),
            "labels": torch.zeros(0, dtype=torch.long),
        }

    proposals = [torch.tensor([[0.0, 0, 5, 5]]) for _ in range(3)]
    detections, seconds = _time_all(
        {"slow": slow, "fast": fast}, dataset, proposals, progress=False
    )
    # one untimed warm-up call each on the first image, then interleaved image by image
    assert calls == ["slow", "fast"] + ["slow", "fast"] * 3
    assert seconds["slow"] >= 0.02 > seconds["fast"]
    assert len(detections["slow"]) == 3 and len(detections["fast"][0]["boxes"]) == 0


def _one_class_result(found: dict[str, list[int]], n: int = 4) -> dict:
    """n images with one 'circle' each; system s detects it exactly on the images found[s]."""
    dataset = FakeDataset(n)
    targets = [dict(dataset.load_target(i), labels=torch.tensor([1])) for i in range(n)]
    none = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.long),
    }
    hit = {
        "boxes": torch.tensor([[2.0, 3, 12, 15]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([1]),
    }
    result = fake_result()
    result.update(test_ds=dataset, targets=targets)
    result["detections"] = {
        name: [hit if i in found.get(name, []) else none for i in range(n)] for name in SYSTEMS
    }
    return result  # fmt: skip


def test_map_difference_by_hand():
    # Fast R-CNN finds every object, R-CNN none: every draw has AP 1 - 0.
    result = _one_class_result({"Fast R-CNN": [0, 1, 2, 3]})
    d = map_difference(result, "Fast R-CNN", "R-CNN", rounds=20)
    assert [d["difference"], d["low"], d["high"]] == pytest.approx([1.0, 1.0, 1.0])
    assert d["fraction_above_zero"] == 1.0
    # The same detections: a difference of exactly 0 in every draw.
    same = map_difference(result, "Fast R-CNN", "Fast R-CNN", rounds=20)
    assert same["difference"] == same["low"] == same["high"] == 0.0
    # Each finds half the objects (different halves): 6/11 - 6/11 = 0 on the test set (11-point AP
    # of recall 0.5 at precision 1), but a draw with more of one half favours one system.
    split = _one_class_result({"Fast R-CNN": [0, 1], "SPPnet": [2, 3]})
    d = map_difference(split, "Fast R-CNN", "SPPnet", rounds=200, seed=1)
    assert d["difference"] == 0.0
    assert d["low"] < 0 < d["high"] and 0.2 < d["fraction_above_zero"] < 0.8
    assert map_difference(split, "Fast R-CNN", "SPPnet", rounds=200, seed=1) == d  # seeded


def test_bootstrap_draw_scores_like_evaluating_the_drawn_images():
    """A draw's mAP from the once-computed matches equals evaluate_detections on the drawn list."""
    from fastrcnn_lite.evaluate import evaluate_detections
    from fastrcnn_lite.experiments.compare_stats import _ranked_matches, _weighted_map

    gen = torch.Generator().manual_seed(0)
    classes, n = ("circle", "square", "star"), 12

    def boxes(k):
        xy = torch.rand(k, 2, generator=gen) * 40
        return torch.cat([xy, xy + 8 + torch.rand(k, 2, generator=gen) * 20], 1)

    targets, detections = [], []
    for _ in range(n):
        g = int(torch.randint(1, 4, (1,), generator=gen))
        gt = boxes(g)
        targets.append(
            {
                "boxes": gt,
                "labels": torch.randint(1, 4, (g,), generator=gen),
                "difficult": torch.rand(g, generator=gen) < 0.2,
            }
        )
        near = gt[torch.randint(g, (5,), generator=gen)] + torch.randn(5, 4, generator=gen) * 3
        det = torch.cat([near, boxes(3)])  # hits, duplicates, misses
        detections.append({"boxes": det, "scores": torch.rand(8, generator=gen),
                           "labels": torch.randint(1, 4, (8,), generator=gen)})  # fmt: skip
    matches = _ranked_matches(detections, targets, len(classes))
    ones = torch.ones(n, dtype=torch.float64)
    full = evaluate_detections(detections, targets, classes, metric="07")["map"]
    assert _weighted_map(matches, ones) == pytest.approx(full, abs=1e-12)
    for seed in range(5):
        drawn = torch.randint(n, (n,), generator=torch.Generator().manual_seed(seed))
        weights = torch.bincount(drawn, minlength=n).double()
        expected = evaluate_detections([detections[i] for i in drawn.tolist()], [targets[i] for i in drawn.tolist()],
                                       classes, metric="07")["map"]  # fmt: skip
        assert _weighted_map(matches, weights) == pytest.approx(expected, abs=1e-12)


def test_map_difference_errors():
    result = _one_class_result({})
    with pytest.raises(ValueError, match="no detections for 'YOLO'"):
        map_difference(result, "YOLO", "R-CNN")
    with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
        map_difference(result, "SPPnet", "R-CNN", rounds=0)
    with pytest.raises(ValueError, match="level must be in"):
        map_difference(result, "SPPnet", "R-CNN", level=95)


def test_compare_detectors_wants_a_config():
    with pytest.raises(TypeError, match="Config"):
        compare_detectors({"backbone": "small"})


def test_compare_detectors_end_to_end_with_untrained_systems(tmp_path, monkeypatch):
    """The whole pipeline on a tiny VOC tree, with random-weight systems in place of trained ones."""
    import fastrcnn_lite.detector as detector_module
    import fastrcnn_lite.experiments.compare as compare_module
    from fastrcnn_lite.backbones import small_backbone
    from fastrcnn_lite.config import Config
    from fastrcnn_lite.evaluate import evaluate_detections
    from fastrcnn_lite.fast_rcnn import build_fast_rcnn
    from fastrcnn_lite.rcnn import RCNN
    from fastrcnn_lite.ridge import BoxRegressors
    from fastrcnn_lite.sppnet import SPPNet, spp_fc
    from fastrcnn_lite.svm import LinearSVMs
    from fastrcnn_lite.voc import VOCDataset

    from .helpers import write_voc_tree

    classes = ("circle", "square")
    images = {
        f"{i:06d}": ((48, 64), [("circle", 5, 6, 30, 40, 0), ("square", 35, 10, 60, 44, 0)])
        for i in range(3)
    }
    root = write_voc_tree(tmp_path / "voc", images, image_set="test")
    dataset = VOCDataset(root, "2007", "test", classes)
    cfg = Config.embedded(cache_dir=str(tmp_path / "cache"), svd_rank_fc6=16, svd_rank_fc7=8)
    gen = torch.Generator().manual_seed(0)
    props = [
        torch.tensor([[4.0, 5, 31, 41], [34, 9, 61, 45], [0, 0, 64, 48], [10, 10, 20, 20]])
    ] * 3

    def heads(dim_svm, dim_ridge):
        return (
            LinearSVMs(
                torch.randn(2, dim_svm, generator=gen),
                torch.zeros(2),
                1.0,
                torch.ones(2, dtype=torch.bool),
            ),
            BoxRegressors(
                torch.zeros(2, dim_ridge, 4),
                torch.zeros(2, 4),
                1.0,
                torch.ones(2, dtype=torch.long),
            ),
        )

    def net():
        torch.manual_seed(0)
        backbone = small_backbone(pool_size=(5, 5))
        backbone.body.eval(), backbone.fc.eval()
        return backbone

    info = {"train_seconds": 30.0, "cache_bytes": 1000, "loaded": 1, "finetune_seconds": 10.0}
    fake_rcnn = RCNN(net(), *heads(256, 3200), classes, context=4, info=dict(info))
    spp_net = net()
    fake_spp = SPPNet(spp_net, spp_fc(spp_net, cfg.spp_levels).eval(), *heads(256, 128 * 39), classes, cfg.spp_levels,
                      cfg.test_scales, cfg.max_size, info=dict(info, train_seconds=20.0, cache_bytes=100))  # fmt: skip
    fake_fast = build_fast_rcnn(cfg, 2, net()).eval()
    fake_rcnn.contract_info(from_cache=True), fake_spp.contract_info(from_cache=False)
    monkeypatch.setattr(compare_module, "load_datasets", lambda cfg: (dataset, dataset))
    monkeypatch.setattr(compare_module, "load_proposals", lambda ds, cfg, progress=True: props)
    # The systems' own load_or_train_* functions, as the detector contract calls them.
    monkeypatch.setattr(detector_module, "load_or_train_rcnn", lambda *a, **k: fake_rcnn)
    monkeypatch.setattr(detector_module, "load_or_train_sppnet", lambda *a, **k: fake_spp)
    monkeypatch.setattr(
        detector_module,
        "load_or_train_fast_rcnn",
        lambda *a, **k: (fake_fast, {"train_seconds": 10.0, "from_cache": True}),
    )

    result = compare_detectors(cfg, progress=False)
    systems = result["systems"]
    assert list(systems) == list(SYSTEMS)
    assert (
        result["setting"]["num_test_images"] == 3 and result["setting"]["proposals_per_image"] == 4
    )
    for name in SYSTEMS:
        s = systems[name]
        evaluation = evaluate_detections(
            result["detections"][name], result["targets"], classes, metric="07"
        )
        assert s["map"] == evaluation["map"] and set(s["ap"]) == set(classes)
        assert s["test_seconds_per_image"] > 0 and len(result["detections"][name]) == 3
        assert s["speedup"] == pytest.approx(
            systems["R-CNN"]["test_seconds_per_image"] / s["test_seconds_per_image"]
        )
    assert systems["R-CNN"]["train_seconds"] == 30.0 and systems["SPPnet"]["cache_bytes"] == 100
    assert systems["R-CNN"]["from_cache"] is True and systems["SPPnet"]["from_cache"] is False
    assert systems["R-CNN"]["train_stages"] == {"finetune_seconds": 10.0}
    assert systems["Fast R-CNN + SVD"]["train_stages"]["sgd_seconds"] == 10.0
    assert result["models"]["R-CNN"] is fake_rcnn  # notebook 07 reads its backbone
    assert (
        systems["Fast R-CNN"]["cache_bytes"] == 0
        and systems["Fast R-CNN + SVD"]["train_seconds"] >= 10.0
    )
    # Truncated SVD keeps fewer parameters than the model it compresses.
    assert systems["Fast R-CNN + SVD"]["parameters"] < systems["Fast R-CNN"]["parameters"]
    assert len(comparison_table(result)) == 4
    # The detections are the systems' own: Fast R-CNN's are what the model returns for that image.
    expected = fake_fast.detect_image(
        dataset.load_image(0),
        props[0],
        tuple(cfg.test_scales),
        cfg.max_size,
        cfg.pyramid_target_area,
    )
    torch.testing.assert_close(result["detections"]["Fast R-CNN"][0]["scores"], expected["scores"])
    # ... and R-CNN's what it returns for that image (the test scales are the model's own).
    expected = fake_rcnn.detect_image(dataset.load_image(2), props[2])
    torch.testing.assert_close(result["detections"]["R-CNN"][2]["boxes"], expected["boxes"])
    assert torch.equal(result["detections"]["R-CNN"][2]["labels"], expected["labels"])
