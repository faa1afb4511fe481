"""Grader for notebook 05 (SPPnet): the spatial pyramid pooling of one RoI, levels concatenated.

Data-flow stage: none (teaching aid). The reference is
``fastrcnn_lite.roi_pool.spatial_pyramid_pool`` (tested against per-level ``roi_pool`` and
``torchvision.ops.roi_pool`` in ``tests/test_roi_pool.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...roi_pool import spatial_pyramid_pool
from .core import Case, exercise, grade

__all__ = ["check_spp_one_roi"]


def _spp_reference(features: torch.Tensor, box: torch.Tensor, levels, spatial_scale: float):
    return spatial_pyramid_pool(features[None], [box[None]], levels, spatial_scale)[
        0
    ]  # (C*sum n^2,)


@exercise("05", points=2, task="spatial pyramid pooling of one RoI, levels concatenated")
def check_spp_one_roi(fn: Callable, trials: int = 10) -> str:
    """``fn(features, box, levels, spatial_scale) -> Tensor[C * sum(n * n)]`` must match
    ``spatial_pyramid_pool``: features (Tensor[C, H, W]), box (Tensor[4]) in image pixels; each
    level n is an n x n RoI max-pool flattened channel by channel (C, n, n), levels in the given
    order.

    Notebook 05 grades its spatial pyramid pooling exercise with it.
    """
    __tracebackhide__ = True
    g = torch.Generator().manual_seed(50)
    features = torch.randn(3, 10, 12, generator=g)  # C = 3, H = 10, W = 12 cells
    scale = 1 / 8  # stride 8, as the small backbone

    def box(*xyxy: float) -> torch.Tensor:
        return torch.tensor(xyxy)

    cases = [
        Case(
            "one level of 2 x 2 bins, 3 channels",
            (features, box(8.0, 8.0, 56.0, 48.0), (2,), scale),
            hint="Flatten each level channel by channel: roi_pool(...) is (1, C, n, n), and "
            ".flatten() of it gives channel 0's n * n bins first, then channel 1's, ...",
        ),
        Case(
            "levels (5, 3, 2, 1), the embedded profile's pyramid",
            (features, box(8.0, 8.0, 88.0, 72.0), (5, 3, 2, 1), scale),
            hint="Concatenate the flattened levels: C * 25 + C * 9 + C * 4 + C * 1 numbers.",
        ),
        Case(
            "levels in another order (1, 2, 3): the concatenation follows it",
            (features, box(8.0, 8.0, 88.0, 72.0), (1, 2, 3), scale),
            hint="Do not sort the levels: concatenate them in the order given.",
        ),
        Case(
            "a RoI of one cell: every bin of every level is that cell",
            (features, box(16.0, 16.0, 19.0, 19.0), (5, 3, 2, 1), scale),
            hint="Corners snap to cells with round(x * spatial_scale), corners inclusive: "
            "(16, 19) -> cells 2..2, one cell wide; every bin repeats it.",
        ),
        Case(
            "a RoI of 3 x 3 cells pooled into 5 x 5 bins (bins share cells)",
            (features, box(16.0, 16.0, 32.0, 32.0), (5, 2), scale),
            hint="With fewer cells than bins, bin i covers [floor(i * h / n), ceil((i + 1) * h / "
            "n)): neighbouring bins overlap. roi_pool does this for you.",
        ),
        Case(
            "a RoI much larger than the bins (the whole map)",
            (features, box(0.0, 0.0, 95.0, 79.0), (6, 3, 2, 1), scale),
            hint="The 1 x 1 level is the max over the whole RoI, per channel.",
        ),
        Case(
            "a RoI partly outside the map",
            (features, box(64.0, 48.0, 140.0, 120.0), (3, 2, 1), scale),
            hint="Bins are clipped to the map; a bin entirely outside it is empty and gives 0.",
        ),
        Case(
            "another spatial scale (1 / 16)",
            (features, box(16.0, 16.0, 150.0, 120.0), (2, 1), 1 / 16),
            hint="Pass spatial_scale through to roi_pool; do not assume stride 8.",
        ),
    ]
    for _ in range(trials):
        xy = torch.rand(2, generator=g) * torch.tensor([90.0, 75.0])
        wh = torch.rand(2, generator=g) * 60 + 1
        cases.append(
            Case(
                "a random RoI, levels (5, 3, 2, 1)",
                (features, torch.cat([xy, xy + wh]), (5, 3, 2, 1), scale),
            )
        )
    return grade(
        fn,
        _spp_reference,
        cases,
        name="check_spp_one_roi",
        against="fastrcnn_lite.spatial_pyramid_pool",
        covered="one-cell RoI, more bins than cells, RoI outside the map, level order",
    )
