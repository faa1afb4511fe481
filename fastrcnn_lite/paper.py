"""The figures the Fast R-CNN paper reports, to print next to the course's own measurements.

Data-flow stage: none (reference numbers). Source: Girshick, "Fast R-CNN", ICCV 2015
(arXiv 1504.08083v2). All numbers are VOC 2007 test unless noted; "S", "M", "L" are CaffeNet,
VGG_CNN_M_1024 and VGG16. These are the paper's figures, not ours: notebooks label them so.
"""

from __future__ import annotations

__all__ = ["TABLE4_VGG16", "VOC07_PER_CLASS_AP", "FINETUNE_DEPTH_MAP", "SMALL_NETWORKS"]

# Table 4: training and testing time, and mAP, with VGG16 on VOC07 (test time excludes proposals).
TABLE4_VGG16 = {
    "R-CNN": {"train_hours": 84.0, "test_seconds_per_image": 47.0, "speedup": 1.0, "map": 66.0},
    "SPPnet": {"train_hours": 25.0, "test_seconds_per_image": 2.3, "speedup": 20.0, "map": 63.1},
    "Fast R-CNN": {
        "train_hours": 9.5,
        "test_seconds_per_image": 0.32,
        "speedup": 146.0,
        "map": 66.9,
    },
    "Fast R-CNN + SVD": {
        "train_hours": 9.5,
        "test_seconds_per_image": 0.22,
        "speedup": 213.0,
        "map": 66.6,
    },
}

# Table 1: per-class AP (%) of Fast R-CNN VGG16 trained on VOC07 trainval, on VOC07 test (mAP 66.9).
VOC07_PER_CLASS_AP = {
    "aeroplane": 74.5, "bicycle": 78.3, "bird": 69.2, "boat": 53.2, "bottle": 36.6,
    "bus": 77.3, "car": 78.2, "cat": 82.0, "chair": 40.7, "cow": 72.7,
    "diningtable": 67.9, "dog": 79.6, "horse": 79.2, "motorbike": 73.0, "person": 69.0,
    "pottedplant": 30.1, "sheep": 65.4, "sofa": 70.2, "train": 75.8, "tvmonitor": 65.8,
}  # fmt: skip

# Section 4.5: VGG16 mAP when fine-tuning starts at a given layer.
FINETUNE_DEPTH_MAP = {"fc6": 61.4, "conv3_1": 66.9, "conv2_1": 67.2}

# Smaller networks (Table 4 and section 4.4): mAP and test speedup over R-CNN with the same network.
SMALL_NETWORKS = {
    "S (CaffeNet)": {
        "fast_rcnn_map": 57.1,
        "rcnn_map": 58.5,
        "speedup": 98.0,
        "speedup_svd": 169.0,
    },
    "M (VGG_CNN_M_1024)": {
        "fast_rcnn_map": 59.2,
        "rcnn_map": 60.2,
        "speedup": 80.0,
        "speedup_svd": 150.0,
    },
}
