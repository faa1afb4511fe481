"""Teaching aids: what the notebooks use to show and to check, not stages of the data flow.

    viz.py ............... drawing: boxes, proposals, detections, loss curves, precision-recall
    box_widgets.py ....... the IoU widget (notebook 00)
    roi_widgets.py ....... RoI pooling's sub-windows, interactive and static (notebook 04)
    widget_display.py .... widgets that also render in a static notebook (nbval, nbconvert)
    grading/ ............. the graded exercises' checkers, one module per notebook
    paper.py ............. the paper's numbers (Tables 1-8, Figs. 2-3), quoted next to ours

Nothing here is imported by the stages or the systems; these modules import them.
"""
