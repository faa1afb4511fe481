"""The figures the Fast R-CNN paper reports, to print next to the course's own measurements.

Data-flow stage: none (reference numbers). Source: Girshick, "Fast R-CNN", ICCV 2015
(arXiv 1504.08083v2). All numbers are VOC 2007 test unless noted; "S", "M", "L" are CaffeNet,
VGG_CNN_M_1024 and VGG16. These are the paper's figures, not ours: notebooks label them so.
"""

from __future__ import annotations

__all__ = [
    "TABLE4_VGG16",
    "VOC07_PER_CLASS_AP",
    "FINETUNE_DEPTH_MAP",
    "SMALL_NETWORKS",
    "FIG2_SVD",
    "FIG3_PROPOSALS",
    "TABLE8_SOFTMAX_SVM",
    "TABLE6_MULTITASK",
    "TABLE7_SCALES",
]

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

# Section 3.1 and Fig. 2: truncated SVD of VGG16's fc6 (rank 1024) and fc7 (rank 256), VOC07 test.
# Test time per image in ms (the total and the two fc layers), before and after; mAP of each.
FIG2_SVD = {
    "ranks": (1024, 256),
    "map": 66.9,
    "map_svd": 66.6,
    "total_ms": 320.0,
    "total_ms_svd": 223.0,
    "fc6_ms": 122.0,
    "fc6_ms_svd": 37.0,
    "fc7_ms": 20.0,
    "fc7_ms_svd": 4.0,
}

# Section 5.5 and Fig. 3: proposals and mAP with model M (VGG_CNN_M_1024), VOC07 test, each
# setting re-trained. Selective search: mAP rises, then falls slightly, from 1k to 10k boxes per
# image, while average recall keeps rising. ``selective_search_map`` is M's 59.2 of Table 4
# (about 2k selective-search boxes per image). Dense boxes: about 45k per image (sliding windows
# over position, scale and aspect ratio); each selective-search box replaced by its closest dense
# box 57.7; selective search plus 45k dense boxes 53.0; dense boxes alone 52.9 (49.3 with SVMs).
FIG3_PROPOSALS = {
    "selective_search_map": 59.2,
    "dense_boxes_per_image": 45_000,
    "closest_dense_map": 57.7,
    "selective_search_plus_dense_map": 53.0,
    "dense_alone_map": 52.9,
    "dense_alone_svm_map": 49.3,
}

# Table 8 (section 5.4): Fast R-CNN with its softmax classifier vs post-hoc SVMs trained with
# hard-negative mining on its own features, mAP on VOC07 test, per network (S, M, L).
TABLE8_SOFTMAX_SVM = {
    "S": {"svm": 56.3, "softmax": 57.1},
    "M": {"svm": 58.7, "softmax": 59.2},
    "L": {"svm": 66.8, "softmax": 66.9},
}

# Table 6 (section 5.1): multi-task training vs stage-wise training (classification first, then
# the box regressor alone), both tested with box regression, mAP on VOC07 test per network.
# (The paper's columns without test-time box regression are not recorded here.)
TABLE6_MULTITASK = {
    "S": {"stage_wise": 54.6, "multi_task": 57.1},
    "M": {"stage_wise": 56.6, "multi_task": 59.2},
    "L": {"stage_wise": 64.0, "multi_task": 66.9},
}

# Table 7 (section 5.2): trained and tested at one scale (shorter side 600) vs five scales
# {480, 576, 688, 864, 1200}, mAP on VOC07 test and test seconds per image (S only).
TABLE7_SCALES = {
    "S": {"single": 57.1, "five": 58.4, "single_seconds": 0.10, "five_seconds": 0.39},
    "M": {"single": 59.2, "five": 60.7},
}
