"""The full profile's geometry end to end on nine real VOC photos: what ``make voc`` runs, shrunk.

Scale 600 capped at 1000, selective search at up to 2,000 proposals per image, the 20 VOC
classes, training, a resume, evaluation and the VOC results files: the path of the full run,
with AlexNet from random weights (nothing to download) and a few iterations, so it fits in
``make test`` (under two minutes on 2 cores). The photos are ``../shared/data/voc07-micro``
(or ``$FASTRCNN_VOC_MICRO``); the test is skipped, saying so, where they are absent.
"""

from __future__ import annotations

import pytest

from fastrcnn_lite import train_cli
from fastrcnn_lite.checkpoint import load_checkpoint
from fastrcnn_lite.config import Config
from fastrcnn_lite.data import load_datasets
from fastrcnn_lite.proposal_cache import load_proposals
from fastrcnn_lite.train import read_metrics, training_example
from fastrcnn_lite.voc import VOC_CLASSES
from fastrcnn_lite.voc_results import read_voc_results

from .helpers import micro_root
from .test_train import no_nan


@pytest.mark.slow
def test_full_profile_on_real_photos_trains_resumes_and_writes_valid_outputs(tmp_path, capsys):
    root = micro_root()  # skips when the nine photos are absent
    out, cache = tmp_path / "run", tmp_path / "cache"
    # The nine photos are VOC07 test images: they serve as both splits here.
    command = ["--profile", "full", "--data-root", str(root), "--year", "2007", "--split", "test",
               "--test-split", "test", "--backbone", "alexnet", "--init", "scratch",
               "--cache-dir", str(cache), "--out", str(out), "--lr-steps", "2",
               "--checkpoint-every", "1", "--no-progress"]  # fmt: skip
    assert train_cli.main(command + ["--iters", "2"]) == 0
    text = capsys.readouterr().out
    assert "scale 600 (longer side <= 1000)" in text and "at most 2000 per image" in text
    assert "test 9 images (found)" in text and "trained 2 iterations" in text

    # The geometry the run used: ~2,000 proposals per photo, shorter side 600 or longer side 1000.
    cfg = Config(data_root=str(root), train_set="test", cache_dir=str(cache), backbone="alexnet")
    train_ds, _ = load_datasets(cfg)
    proposals = load_proposals(train_ds, cfg, progress=False)
    counts = [len(p) for p in proposals]
    assert max(counts) <= 2000 and sum(counts) / len(counts) > 1000, counts
    for i in range(len(train_ds)):
        image, props, target = training_example(train_ds, proposals, i, 600, False, cfg)
        h, w = image.shape[-2:]
        assert min(h, w) == 600 or max(h, w) == 1000, (i, h, w)
        assert max(h, w) <= 1000 and len(props) == counts[i]

    # Resume to 3 iterations and evaluate.
    assert train_cli.main(command + ["--iters", "3", "--resume", "--eval"]) == 0
    text = capsys.readouterr().out
    assert "resuming from" in text and "at iteration 2" in text
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 3
    assert [r["iter"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3]
    result = no_nan((out / "eval.json").read_text())
    present = {VOC_CLASSES[int(label) - 1] for i in range(len(train_ds))
               for label, hard in zip(train_ds.load_target(i)["labels"], train_ds.load_target(i)["difficult"], strict=True)
               if not hard}  # fmt: skip
    assert set(result["ap"]) == set(VOC_CLASSES) and 0 < len(present) < 20
    assert {c for c, ap in result["ap"].items() if ap is not None} == present
    assert result["map"] is not None and result["num_images"] == 9 and result["iterations"] == 3
    # One results file per class, every line readable by the evaluation's parser.
    files = sorted((out / "results").iterdir())
    assert [f.name for f in files] == sorted(f"comp4_det_test_{c}.txt" for c in VOC_CLASSES)
    detections = read_voc_results(out / "results", "test", VOC_CLASSES, train_ds.ids)
    lines = sum(len(f.read_text().splitlines()) for f in files)
    # (After 3 iterations from random weights every score may sit below cfg.score_thresh = 0.05
    # (1/21 = 0.048 for a flat softmax), so the files may be empty; their lines are tested in
    # tests/test_evaluate.py.)
    assert sum(len(d["scores"]) for d in detections) == lines
    assert (out / "training.png").stat().st_size > 0
