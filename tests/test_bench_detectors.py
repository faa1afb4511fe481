"""The detector benchmark (python -m fastrcnn_lite.bench detectors): arithmetic, MAC counts, a smoke run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from fastrcnn_lite.bench import main
from fastrcnn_lite.experiments.bench_detectors import (
    _at_test_scale,
    bench_detectors,
    build_detectors,
    count_macs,
    format_mac_budget,
    mac_budget,
    speedup_line,
)
from fastrcnn_lite.experiments.workloads import paper_geometry

REPO = Path(__file__).resolve().parents[1]
LAST_LINE = re.compile(
    r"^speedup over R-CNN: fast_rcnn \d+\.\dx, fast_rcnn_svd \d+\.\dx, sppnet \d+\.\dx$"
)
SMALL = [
    "--backbone",
    "small",
    "--proposals",
    "50",
    "--images",
    "1",
    "--repeats",
    "1",
    "--scale",
    "64",
    "--max-size",
    "96",
]


def test_speedup_line_arithmetic():
    seconds = {"rcnn": 10.0, "sppnet": 2.0, "fast_rcnn": 0.1, "fast_rcnn_svd": 0.04}
    assert (
        speedup_line(seconds)
        == "speedup over R-CNN: fast_rcnn 100.0x, fast_rcnn_svd 250.0x, sppnet 5.0x"
    )
    assert LAST_LINE.match(speedup_line(seconds))
    with pytest.raises(ValueError, match="missing \\['fast_rcnn_svd'\\]"):
        speedup_line({"rcnn": 1.0, "sppnet": 1.0, "fast_rcnn": 1.0})


def test_count_macs_by_hand():
    conv, linear = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(5, 7)
    grouped = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    with count_macs() as counter:
        conv(torch.zeros(1, 3, 10, 10))  # 10*10 outputs x 8 channels x (3*3*3) = 21,600
        linear(torch.zeros(4, 5))  # 4 rows x 7 outputs x 5 inputs = 140
        grouped(torch.zeros(1, 4, 6, 6))  # 6*6 x 8 x (2*3*3) = 5,184
    assert counter["macs"] == 21_600 + 140 + 5_184
    linear(torch.zeros(4, 5))  # outside the block: the hook is gone
    assert counter["macs"] == 21_600 + 140 + 5_184


def test_rcnn_forward_is_per_proposal_and_svd_at_full_rank_is_fast_rcnn():
    torch.manual_seed(0)
    detectors = build_detectors("small", num_classes=3, svd_ranks=(256, 256), rcnn_batch=4,
                                scale=64, max_size=80)  # fmt: skip
    forward = {key: detector.score_proposals for key, detector in detectors.items()}
    image = torch.rand(3, 64, 80)  # already at the test scale
    boxes = torch.tensor(
        [[2.0, 3, 30, 40], [10, 10, 70, 60], [0, 0, 80, 64], [40, 20, 60, 30], [5, 30, 25, 60]]
    )
    scores, deltas = forward["rcnn"](image, boxes)
    assert scores.shape == (5, 3) and deltas.shape == (5, 12)
    # R-CNN's cost is P independent passes (so timing a sample and scaling is exact in FLOPs):
    # each proposal's output does not depend on the others or on the batching.
    for i in range(len(boxes)):
        one_scores, one_deltas = forward["rcnn"](image, boxes[i : i + 1])
        torch.testing.assert_close(one_scores[0], scores[i], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(one_deltas[0], deltas[i], atol=1e-4, rtol=1e-4)
    # Truncated SVD at full rank (256 = fc_dim of the small backbone) is the same network.
    logits, box_deltas = forward["fast_rcnn"](image, boxes)
    logits_svd, box_deltas_svd = forward["fast_rcnn_svd"](image, boxes)
    assert logits.shape == (5, 4) and box_deltas.shape == (5, 12)
    torch.testing.assert_close(logits_svd, logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(box_deltas_svd, box_deltas, atol=1e-5, rtol=1e-4)
    sp_scores, sp_deltas = forward["sppnet"](image, boxes)
    assert sp_scores.shape == (5, 3) and sp_deltas.shape == (5, 12)
    # The benchmark times the real detectors: the same objects detect whole images.
    assert [d.name for d in detectors.values()] == [
        "R-CNN",
        "SPPnet",
        "Fast R-CNN",
        "Fast R-CNN + SVD",
    ]
    for detector in detectors.values():
        assert set(detector.detect_image(image, boxes)) == {"boxes", "scores", "labels"}


def test_sppnet_forward_is_the_pyramid_of_one_conv_pass():
    """SPPnet's score_proposals, by hand: conv once on the image at its scale, the pyramid of each
    box, fc6/fc7, then SVMs and ridge, written out from the stages."""
    from fastrcnn_lite.roi_pool import SpatialPyramidPool

    spp = build_detectors("small", num_classes=3, scale=64, max_size=80)["sppnet"]
    image = torch.rand(3, 64, 80)
    boxes = torch.tensor([[2.0, 3, 30, 40], [10, 10, 70, 60], [0, 0, 80, 64]])
    with torch.no_grad():
        conv = spp.backbone.body(image[None])  # (1, C, h, w)
        pool = SpatialPyramidPool(spp.levels, 1.0 / spp.backbone.stride)
        pyramids = pool(conv, [boxes])  # (P, C * sum n*n)
        scores = spp.svms(spp.fc(pyramids))
    got_scores, got_deltas = spp.score_proposals(image, boxes)
    torch.testing.assert_close(got_scores, scores, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_deltas, spp.box_regressors(pyramids), atol=1e-4, rtol=1e-4)


def test_smoke_run_in_process(capsys):
    assert main(["detectors", *SMALL, "--rcnn-sample", "10"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert LAST_LINE.match(out[-1]), out[-1]
    text = "\n".join(out)
    assert "RANDOM weights" in text
    assert "R-CNN is timed on 10 of the 50 proposals per image and scaled linearly (x5)" in text
    for name in ("R-CNN", "SPPnet", "Fast R-CNN", "Fast R-CNN + SVD"):
        assert any(line.startswith(name) for line in out), name


def test_returned_figures_are_consistent():
    result = bench_detectors(
        "small",
        proposals=20,
        scale=48,
        max_size=64,
        images=1,
        rcnn_sample=5,
        repeats=1,
        print_fn=lambda *a: None,
    )
    seconds, speedup = result["seconds"], result["speedup"]
    assert result["rcnn_scale"] == 4
    for key in seconds:
        assert seconds[key] > 0
        assert speedup[key] == pytest.approx(seconds["rcnn"] / seconds[key])
    # The whole network on 20 crops costs more MACs than one conv pass plus 20 fc passes.
    assert (
        result["macs"]["rcnn"] > result["macs"]["fast_rcnn"] > result["macs"]["fast_rcnn_svd"] > 0
    )
    assert result["line"] == speedup_line(seconds)


def test_given_models_are_timed_at_the_asked_scale_and_left_unchanged(capsys):
    models = build_detectors("small", num_classes=3, scale=192, max_size=256)
    result = bench_detectors("small", proposals=12, scale=48, max_size=64, images=1, rcnn_sample=4,
                             repeats=1, models=models)  # fmt: skip
    out = capsys.readouterr().out
    assert "TRAINED models" in out and "3 classes" in out
    assert set(result["seconds"]) == {"rcnn", "sppnet", "fast_rcnn", "fast_rcnn_svd"}
    # The originals keep their own test scale; the copies tested at 48 (images 48 x 64).
    assert models["fast_rcnn"].test_scales == (192,) and models["sppnet"].scales == (192,)
    copies = {key: _at_test_scale(model, 48, 64) for key, model in models.items()}
    assert copies["fast_rcnn"].test_scales == copies["sppnet"].scales == (48,)
    assert copies["fast_rcnn"].max_size == copies["sppnet"].max_size == 64
    assert copies["fast_rcnn"].head is models["fast_rcnn"].head  # the same trained modules
    image, boxes = torch.rand(3, 48, 64), torch.tensor([[2.0, 3.0, 30.0, 40.0]])
    with torch.no_grad():  # the scale matters (192: the image is enlarged 4x before the conv)
        assert not torch.allclose(copies["fast_rcnn"].score_proposals(image, boxes)[0],
                                  models["fast_rcnn"].score_proposals(image, boxes)[0])  # fmt: skip
    with pytest.raises(ValueError, match="missing \\['sppnet'\\]"):
        bench_detectors("small", proposals=4, scale=48, max_size=64, images=1, repeats=1,
                        models={k: v for k, v in models.items() if k != "sppnet"})  # fmt: skip


def test_paper_geometry_keeps_the_papers_warp_to_image_proportion():
    assert paper_geometry(224) == (600, 1000)  # VGG16: the paper's own setting
    scale, max_size = paper_geometry(40)  # the small backbone's 40 x 40 warps
    assert abs(40 / scale - 224 / 600) < 0.002 and abs(max_size / scale - 1000 / 600) < 0.01


def test_errors():
    with pytest.raises(ValueError, match="backbone must be one of"):
        bench_detectors("resnet50", print_fn=lambda *a: None)
    with pytest.raises(ValueError, match="proposals must be an integer >= 1"):
        bench_detectors("small", proposals=0, print_fn=lambda *a: None)
    with pytest.raises(ValueError, match="max_size .* must be >= scale"):
        bench_detectors("small", scale=600, max_size=500, print_fn=lambda *a: None)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            bench_detectors("small", device="cuda", print_fn=lambda *a: None)


def test_command_line_through_bench():
    """`python -m fastrcnn_lite.bench detectors ...` hands its options to bench_detectors unchanged."""
    cmd = [sys.executable, "-m", "fastrcnn_lite.bench", "detectors", "--backbone", "small", "--proposals", "20",
           "--images", "1", "--repeats", "1", "--scale", "48", "--max-size", "64", "--threads", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert LAST_LINE.match(done.stdout.strip().splitlines()[-1]), done.stdout
    bad = subprocess.run(
        [*cmd[:4], "--backbone", "resnet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_mac_budget_matches_counted_runs_and_the_known_vgg16_cost():
    from fastrcnn_lite.backbones import small_backbone, vgg16_backbone

    net = small_backbone()
    net.body.eval()
    budget = mac_budget(net, (48, 56), proposals=30, svd_ranks=(16, 8), spp_levels=(5, 3, 2, 1))
    with torch.no_grad(), count_macs() as conv_image:  # a real run on the CPU as the reference
        net.body(torch.zeros(1, 3, 48, 56))
    with torch.no_grad(), count_macs() as conv_crop:
        net.body(torch.zeros(1, 3, 40, 40))
    with torch.no_grad(), count_macs() as fc:
        net.fc(torch.zeros(1, 128 * 5 * 5))
    assert budget["conv_image"] == conv_image["macs"]
    assert budget["conv_crop"] == conv_crop["macs"]
    assert budget["fc"] == fc["macs"] == 3200 * 256 + 256 * 256
    assert budget["fc_svd"] == 16 * (3200 + 256) + 8 * (256 + 256)
    assert budget["fc_spp"] == 128 * (25 + 9 + 4 + 1) * 256 + 256 * 256
    assert budget["rcnn"] == 30 * (budget["conv_crop"] + budget["fc"])
    assert budget["fast_rcnn"] == budget["conv_image"] + 30 * budget["fc"]
    assert budget["fast_rcnn_svd"] == budget["conv_image"] + 30 * budget["fc_svd"]
    assert budget["sppnet"] == budget["conv_image"] + 30 * budget["fc_spp"]
    # VGG16's conv layers on a 224 x 224 crop: 15.35 GMAC (the well-known ~15.5 G with the fc layers).
    with torch.device("meta"):
        vgg = vgg16_backbone(None)
    vgg_budget = mac_budget(vgg, (600, 800), 2000, (1024, 256))
    assert vgg_budget["conv_crop"] == 15_346_630_656
    assert vgg_budget["fc"] == 25088 * 4096 + 4096 * 4096
    text = format_mac_budget(vgg_budget, 224, (600, 800))
    assert "MAC ratio over R-CNN: Fast R-CNN 80x, with SVD 147x, SPPnet 79x" in text
