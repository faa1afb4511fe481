"""Training speed side by side (fastrcnn_lite/experiments/train_speed.py): the projection
worked by hand, the measurement on three rendered images, and its bad inputs."""

import pytest

from fastrcnn_lite.config import Config
from fastrcnn_lite.experiments.train_speed import (
    SYSTEMS,
    budgets,
    fair_verdict,
    format_training_table,
    project_training,
    training_speed,
    training_table,
)
from fastrcnn_lite.rcnn import finetune_iterations as rcnn_iterations
from fastrcnn_lite.sppnet_finetune import finetune_iterations as spp_iterations
from tests.test_rcnn import RenderedDataset, tiny_backbone, toy_proposals

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SPEED = {
    "iteration_seconds": {"R-CNN": 0.5, "SPPnet": 0.01, "Fast R-CNN": 0.2},
    "image_seconds": {"R-CNN": 0.1, "SPPnet": 0.02},
    "batches": {"R-CNN": "128 warped windows", "SPPnet": "128 pyramids", "Fast R-CNN": "2 x 64"},
    "iterations": 10,
    "threads": 2,
}
RECORDED = {"R-CNN": {"svm_seconds": 5.0, "ridge_seconds": 1.0}, "SPPnet": {"svm_seconds": 4.0}}


def test_the_projection_worked_by_hand():
    stages = project_training(
        SPEED, {"R-CNN": 100, "SPPnet": 600, "Fast R-CNN": 1500}, 400, RECORDED
    )
    # R-CNN: 100 x 0.5 s fine-tuning, 400 images x 0.1 s features, SVMs and ridge as recorded.
    assert stages["R-CNN"] == pytest.approx(
        {"fine-tuning": 50.0, "features": 40.0, "SVMs": 5.0, "ridge": 1.0}
    )
    # SPPnet: 600 x 0.01 s, 400 x 0.02 s, no ridge recorded: no ridge stage.
    assert stages["SPPnet"] == pytest.approx({"fine-tuning": 6.0, "features": 8.0, "SVMs": 4.0})
    # Fast R-CNN: one stage, 1500 x 0.2 s.
    assert stages["Fast R-CNN"] == pytest.approx({"fine-tuning": 300.0})


def test_equal_budget_gives_every_system_fast_rcnns_iterations():
    cfg = Config.embedded(max_iters=1000)
    b = budgets(cfg)
    assert b["equal budget"] == {"R-CNN": 1000, "SPPnet": 1000, "Fast R-CNN": 1000}
    assert b["as run"] == {"R-CNN": rcnn_iterations(cfg, "small"), "SPPnet": spp_iterations(cfg, "small"),
                           "Fast R-CNN": 1000}  # fmt: skip
    rows = training_table(SPEED, cfg, 400, RECORDED)
    fair = {r["system"]: r for r in rows if r["budget"] == "equal budget"}
    # R-CNN: 1000 x 0.5 + 400 x 0.1 + 5 + 1 = 546 s; Fast R-CNN: 1000 x 0.2 = 200 s.
    assert fair["R-CNN"]["total"] == pytest.approx(546.0)
    assert fair["R-CNN"]["shares"]["fine-tuning"] == pytest.approx(500 / 546)
    assert fair["Fast R-CNN"]["total"] == pytest.approx(200.0)
    assert sum(fair["SPPnet"]["shares"].values()) == pytest.approx(1.0)
    verdict = fair_verdict(rows)
    assert verdict.startswith(
        "Fast R-CNN trains faster than R-CNN under the fair protocol: yes, 2.7x"
    )
    assert "largest difference is in fine-tuning (300 s less" in verdict  # 500 - 200
    table = format_training_table(rows, SPEED).splitlines()
    assert len(table) == 1 + 1 + 2 + len(rows)  # rates, blank line, header, rule, rows
    # A slower Fast R-CNN is said so.
    slow = dict(SPEED, iteration_seconds=dict(SPEED["iteration_seconds"], **{"Fast R-CNN": 2.0}))
    assert ": no (" in fair_verdict(training_table(slow, cfg, 400, RECORDED))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"speed\['iteration_seconds'\]"):
        project_training({"iteration_seconds": {"R-CNN": 1.0}, "image_seconds": {}}, {}, 4)
    with pytest.raises(ValueError, match="iterations must give every system"):
        project_training(SPEED, {"R-CNN": 1}, 4)
    with pytest.raises(ValueError, match="num_images"):
        project_training(SPEED, dict.fromkeys(SYSTEMS, 1), -1)
    ds = RenderedDataset([0, 1])
    with pytest.raises(ValueError, match="proposals has 1 entries but the dataset has 2"):
        training_speed(Config.embedded(), ds, toy_proposals(ds)[:1], backbone=tiny_backbone())
    with pytest.raises(ValueError, match="iterations must be an int >= 1"):
        training_speed(
            Config.embedded(), ds, toy_proposals(ds), iterations=0, backbone=tiny_backbone()
        )


def test_the_measurement_gives_a_positive_rate_for_each_system(tmp_path):
    ds = RenderedDataset([0, 1, 2])
    props = toy_proposals(ds)
    cfg = Config.embedded(cache_dir=str(tmp_path / "cache"))
    speed = training_speed(cfg, ds, props, iterations=2, warmup=1, backbone=tiny_backbone(),
                           batch_size=16, spp_images=2)  # fmt: skip
    assert set(speed["iteration_seconds"]) == set(SYSTEMS)
    assert set(speed["image_seconds"]) == {"R-CNN", "SPPnet"}
    assert all(s > 0 for s in speed["iteration_seconds"].values())
    assert all(s > 0 for s in speed["image_seconds"].values())
    assert speed["num_images"] == 3 and speed["iterations"] == 2
    assert speed["proposals_per_image"] == pytest.approx(sum(len(p) for p in props) / 3)
    rows = training_table(speed, cfg, len(ds))
    assert {r["system"] for r in rows} == set(SYSTEMS) and all(r["total"] > 0 for r in rows)
