"""The paper's ablations that need no retraining, on a trained Fast R-CNN, next to the paper's numbers.

Data-flow stage: **experiments on trained detectors** (image -> proposals -> conv map -> RoI pool
-> heads -> detections -> VOC07 mAP, with one stage changed at test time). Each experiment takes
the trained :class:`~fastrcnn_lite.fast_rcnn.FastRCNN` and the test split, changes one thing and
measures what the paper measured:

* :func:`svd_rank_ablation`, paper section 3.1 and Fig. 2: fc6 compressed by truncated SVD at
  several ranks (fc7 at ``cfg.svd_rank_fc7``), against the uncompressed model: mAP, test time
  per image and the fc6 + fc7 time per image.
* :func:`proposal_ablation`, section 5.5 and Fig. 3: the top-k selective-search proposals of each
  image for several k, sliding-window **dense boxes** (:func:`dense_boxes`) alone and added to
  selective search: mAP and average recall (AR, the mean recall over IoU 0.5..0.95). The paper
  re-trains the network for each setting; here the model trained on selective search is only
  *tested* on the others.
* :func:`svm_ablation`, section 5.4 and Table 8: one-vs-rest linear SVMs trained with hard-negative
  mining (``fastrcnn_lite.svm.train_svms`` on ``fastrcnn_lite.region_heads.SVMRegions``, R-CNN's
  training set: gt boxes positive, IoU < ``cfg.svm_neg_iou`` negative) on the model's own fc7 of
  every training proposal, against its softmax; both use the model's ``bbox_pred`` boxes.

Conventions:

* **One conv pass per image.** A test image goes through the conv layers once per experiment;
  every variant of that experiment reuses its RoI-pooled features (an SVD copy changes only fc6
  and fc7; a proposal subset is a subset of the pooled boxes), which gives the same detections as
  running each variant alone. Single test scale only (``model.test_scales`` of length 1).
* **Intervals.** Every comparison is paired over the test images and comes with a 95% bootstrap
  interval (200 draws): mAP differences from :func:`fastrcnn_lite.experiments.compare_stats.map_difference`;
  AR differences and time ratios from the same draws of images, made here.
* **Time** is :mod:`fastrcnn_lite.timing`'s test time per image (the median over images,
  variants interleaved image by image, decoding and proposals outside the clock) on the first
  ``timing_images`` test images. The fc6 + fc7 time is the same clock around ``head.fc`` on each
  image's pooled features. A time is reported relative to the uncompressed model's:
  ``ratio - 1`` (the paper: 223 / 320 - 1 = -30%).
* **Cache.** Each experiment's result is a plain dict (JSON) stored under ``cfg.cache_dir`` by
  :func:`~fastrcnn_lite.checkpoint.cache_path`, keyed by every config field, the model's weights,
  the test split and its proposals (and the training split for the SVMs) and the experiment's
  settings: a changed setting recomputes, an unchanged one loads (times included: those measured
  when it was computed; ``from_cache`` says which).

**Verdict rule** (:func:`verdict`), for a difference d = ours (variant) - ours (reference) with
bootstrap interval [low, high] and the sign s of the paper's difference:

* "within noise": the interval contains 0 (this test set cannot tell the two apart);
* "reproduced in kind": the interval excludes 0 and d has the sign s of the paper's;
* "not reproduced": the interval excludes 0 and d has the opposite sign.

"In kind" because the backbone, the data and the scale differ: the direction is compared, not
the size. Where the paper's own difference is a fraction of a point (SVD's -0.3, SVMs' -0.1 to
-0.8), "within noise" is what its claim ("little or no loss") predicts.

:func:`ablation_table` lists every comparison: ours, the paper's, our difference and interval,
the paper's difference and the verdict; :func:`plot_ablations` draws the SVD and proposal curves.
Taught in ``notebooks/07_comparison.ipynb`` (section 9). The ablations that retrain (Tables 5, 6
and 7, SPPnet's five scales) are in ``ablation_training.py`` and ``ablation_scales.py``.

Where each part lives (this module gathers their public names, so that notebook 07's
``ablations.<name>`` reads as one experiment)::

    ablation_svd.py ........ svd_rank_ablation
    ablation_proposals.py .. proposal_ablation, dense_boxes, IOU_THRESHOLDS
    ablation_svm.py ........ svm_ablation
    ablation_common.py ..... what the three share: input checks, one conv pass, the result cache
    ablation_stats.py ...... the bootstrap intervals (map_interval, ...), verdict, VERDICTS
    ablation_report.py ..... ablation_table, save_report (reports/ablations.json)
    ablation_plots.py ...... plot_ablations
"""

from __future__ import annotations

from .ablation_plots import plot_ablations
from .ablation_proposals import IOU_THRESHOLDS, dense_boxes, proposal_ablation
from .ablation_report import ablation_table, save_report
from .ablation_stats import VERDICTS, map_interval, verdict
from .ablation_svd import svd_rank_ablation
from .ablation_svm import svm_ablation

__all__ = [
    "VERDICTS",
    "IOU_THRESHOLDS",
    "dense_boxes",
    "verdict",
    "map_interval",
    "svd_rank_ablation",
    "proposal_ablation",
    "svm_ablation",
    "ablation_table",
    "save_report",
    "plot_ablations",
]
