"""Experiments: the measurements the course reports, built on the systems through their contract.

    compare.py ........... the three systems side by side: the comparison loop (notebook 07)
      compare_stats.py ... an mAP gap with its paired bootstrap interval over the test images
      compare_report.py .. the table beside the paper's Table 4, its charts, the report
                           ``make course`` shows
    ablations.py ......... the paper's ablations that need no retraining (notebook 07): one module
                           per experiment, ablation_svd.py, ablation_proposals.py (and the dense
                           boxes), ablation_svm.py; what they share, ablation_common.py (one conv
                           pass per image, the result cache); ablation_stats.py (intervals, the
                           verdict); ablation_report.py (the table, ablations.json);
                           ablation_plots.py (the figure)
    ablation_training.py . the ablations that retrain, on a short schedule (notebook 07): which
                           layers to fine-tune (Table 5), multi-task vs stage-wise (Table 6);
      ablation_scales.py . one scale vs five (Table 7), SPPnet with five test scales;
      ablation_training_report.py  their rows for the ablations' table
    train_speed.py ....... training speed side by side, as run and at equal budgets (notebook 07)
    error_report.py ...... the error analysis's tables, charts and pictures (notebook 07)
    profiling.py ......... where one Fast R-CNN iteration's time goes (notebook 06)
    bench_roi_pool.py .... our RoI pooling against torchvision's kernel (``python -m
                           fastrcnn_lite.bench roi_pool``)
    bench_detectors.py ... the three systems' test time at the paper's geometry (``python -m
                           fastrcnn_lite.bench detectors``)
    workloads.py ......... the benchmarks' synthetic proposals
    protocol.py .......... the comparison's protocol table: each system's setting, the papers',
                           whom each difference favours (notebook 07)

The stages and systems never import from here.
"""
