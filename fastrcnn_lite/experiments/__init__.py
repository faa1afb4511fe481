"""Experiments: the measurements the course reports, built on the systems through their contract.

    compare.py ........... the three systems side by side: mAP with bootstrap intervals, time per
                           image, the report ``make course`` writes (notebook 07)
    ablations.py ......... the paper's ablations that need no retraining (notebook 07)
    profiling.py ......... where one Fast R-CNN iteration's time goes (notebook 06)
    bench_roi_pool.py .... our RoI pooling against torchvision's kernel (``python -m
                           fastrcnn_lite.bench roi_pool``)
    bench_detectors.py ... the three systems' test time at the paper's geometry (``python -m
                           fastrcnn_lite.bench detectors``)
    workloads.py ......... the benchmarks' synthetic proposals

The stages and systems never import from here.
"""
