"""fastrcnn_lite: R-CNN, SPPnet and Fast R-CNN built step by step, one module per stage.

The data flow, and the module that implements each stage (one job per module: the algorithm a
learner reads, apart from its cache, its command and its pictures)::

    image ............................ voc.py (VOCDataset), embedded.py (the generated dataset's
                                       renderer), embedded_files.py (writing it), download.py +
                                       voc_archive.py (real VOC), data.py (which one a Config means)
      -> proposals ................... proposals.py (selective search, recall), proposal_cache.py
      -> backbone feature map ........ backbones.py, transforms.py (scales, flips, batching)
      -> region features ............. warp.py (R-CNN) | roi_pool.py (SPP and RoI pooling;
                                       roi_pool_kernel.py, roi_pool_plan.py, roi_pool_args.py:
                                       its vectorised kernel, the kernel's plan, argument checks);
                                       regions.py (R-CNN's and SPPnet's training windows, feature
                                       cache)
      -> heads ....................... fast_rcnn_head.py (cls_score + bbox_pred) | svm.py (SVMs),
                                       ridge.py (box regressors), region_heads.py (their training
                                       sets, the SVM detector), region_heads_cache.py
      -> losses / detections ......... losses.py, sampling.py, detect.py (per-class NMS)
      -> evaluation .................. evaluate.py (VOC AP, mAP), voc_results.py (results files)
      -> diagnosis ................... error_analysis.py (kinds of false positive),
                                       size_analysis.py (AP by object size)

    the three systems ................ rcnn.py; sppnet.py (+ sppnet_cache.py, sppnet_finetune.py,
                                       sppnet_analysis.py: receptive fields, backward cost);
                                       fast_rcnn.py (+ fast_rcnn_inputs.py, fast_rcnn_run.py: the
                                       dataset loop, devices); svd.py (truncated SVD);
                                       detector.py (one contract: build or load, to(device),
                                       detect_image), pretrain.py (the shared pre-trained network)
    the long training run ............ train.py (SGD loop), train_cache.py (the cached model),
                                       train_state.py (checkpoints, resume, the run folder), plan.py
                                       (plan and timed estimate), preflight.py (GPU memory),
                                       curves.py (training.png)
    the commands ..................... train_cli.py, proposals_cli.py, embedded_cli.py,
                                       evaluate_cli.py, download_cli.py, bench.py (each stage module
                                       keeps ``python -m fastrcnn_lite.<stage>`` working)
    shared ........................... boxes.py (IoU, NMS, deltas), config.py, checkpoint.py
                                       (atomic files, digests, cache keys), cli.py (one-line user
                                       errors), progress.py, timing.py (test time per image)

Teaching aids, in ``teaching/`` (see its docstring): drawing, the widgets, the graded exercises'
checkers, the paper's numbers. Experiments, in ``experiments/``: the comparison, the ablations,
the profile, the benchmarks. The stages, systems and training run import nothing from either
sub-package (``tests/test_layout.py`` checks it, with the rest of this layout); only the
commands do.

Shape letters used in every docstring and shape comment (each means one thing):

    N  images in a batch               C  channels of a feature map
    H x W  feature-map height x width   h x w  pooled (output) size of RoI pooling
    G  ground-truth boxes in an image   P  proposals in an image
    R  RoIs in a batch (all images)     K  object classes (K + 1 with background)
    D  detections in an image           F  length of one region's feature vector

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
