"""Teaching aids: what the notebooks use to show and to check, not stages of the data flow.

    viz.py ............... drawing: images with boxes, proposals, detections
    curve_plots.py ....... a training loss curve, a precision-recall curve (notebooks 02, 03, 05)
    data_plots.py ........ proposal recall curves, samples of the embedded dataset (notebook 01)
    box_widgets.py ....... the IoU widget (notebook 00)
    roi_views.py ......... RoI pooling's bins, argmax cells and gradient routing (notebook 04)
    roi_figures.py ....... RoI pooling's static figures and readouts (notebook 04)
    roi_widgets.py ....... RoI pooling's sliders over those figures (notebook 04)
    widget_display.py .... widgets that also render in a static notebook (nbval, nbconvert)
    grading/ ............. the graded exercises' checkers, one module per stage
    paper.py ............. the paper's numbers (Tables 1-8, Figs. 2-3), quoted next to ours

Nothing here is imported by the stages or the systems; these modules import them.
"""
