"""fastrcnn_lite: R-CNN, SPPnet and Fast R-CNN built step by step, one module per stage.

The data flow, and the module that implements each stage::

    image ............................ voc.py (VOCDataset), embedded.py (the generated dataset),
                                       download.py (real VOC), data.py (which one a Config means)
      -> proposals ................... proposals.py (selective search, cached)
      -> backbone feature map ........ backbones.py, transforms.py (scales, flips, batching)
      -> region features ............. warp.py (R-CNN) | roi_pool.py (SPP and RoI pooling)
                                       | roi_pool_kernel.py (its vectorised kernel);
                                       regions.py (R-CNN's and SPPnet's training windows and
                                       feature cache)
      -> heads ....................... fast_rcnn.py (cls_score + bbox_pred) | svm.py (SVMs + ridge),
                                       region_heads.py (their training sets, the SVM detector)
      -> losses / detections ......... losses.py, sampling.py, detect.py (per-class NMS)
      -> evaluation .................. evaluate.py (VOC AP, mAP)
      -> diagnosis ................... error_analysis.py (kinds of false positive, AP by size)

    the three systems ................ rcnn.py, sppnet.py, fast_rcnn.py (+ svd.py: truncated SVD),
                                       detector.py (one contract: build or load, to(device),
                                       detect_image), pretrain.py (the shared pre-trained network)
    the long training run ............ train.py (SGD loop), train_state.py (checkpoints, resume,
                                       the run folder), train_cli.py (the command), plan.py
                                       (plan and timed estimate), preflight.py (GPU memory),
                                       curves.py (training.png)
    shared ........................... boxes.py (IoU, NMS, deltas), config.py, checkpoint.py
                                       (atomic files, digests, cache keys), cli.py (one-line user
                                       errors), progress.py, timing.py (test time per image)

Teaching aids, in ``teaching/``: viz.py (drawing), box_widgets.py, roi_widgets.py,
widget_display.py (the interactive widgets), grading/ (the graded exercises' checkers), paper.py
(the paper's numbers). Experiments, in ``experiments/``: compare.py (the three systems side by
side), ablations.py (the paper's ablations that need no retraining), profiling.py (where an
iteration's time goes), bench_roi_pool.py and bench_detectors.py (run by ``python -m
fastrcnn_lite.bench``, the command in bench.py), workloads.py (their synthetic inputs). The stages
and systems import nothing from either sub-package.

Shape letters used in every docstring and shape comment:

    N  images in a batch              C  channels of a feature map
    H x W  feature-map height x width  h x w  pooled (output) size of RoI pooling
    G  ground-truth boxes in an image  P  proposals in an image
    K  RoIs in a batch (or, where a docstring says so, the number of object classes)
    D  detections in an image

Boxes are ``(x1, y1, x2, y2)`` in continuous pixels (see ``boxes.py`` for the one place the VOC
1-based convention is converted). Background is class 0; object classes are 1..K.
"""

from .boxes import (
    batched_nms,
    box_area,
    box_iou,
    boxes_to_rois,
    clip_boxes_to_image,
    decode_boxes,
    encode_boxes,
    nms,
)
from .config import Config, profile_from_env
from .roi_pool import RoIPool, SpatialPyramidPool, roi_pool, roi_pool_loop, spatial_pyramid_pool
from .voc import VOC_CLASSES, VOCDataset

__version__ = "0.1.0"

__all__ = [
    "Config",
    "profile_from_env",
    "VOCDataset",
    "VOC_CLASSES",
    "box_area",
    "box_iou",
    "nms",
    "batched_nms",
    "clip_boxes_to_image",
    "encode_boxes",
    "decode_boxes",
    "boxes_to_rois",
    "roi_pool",
    "RoIPool",
    "roi_pool_loop",
    "spatial_pyramid_pool",
    "SpatialPyramidPool",
]
