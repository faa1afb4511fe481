"""Graders for notebook 04 (RoI pooling from scratch): the forward pass and its backward (eq. 4).

Data-flow stage: none (teaching aid) for **region features**. The reference is
``torchvision.ops.roi_pool``; every case is also checked to agree bit for bit with the package's
:func:`fastrcnn_lite.roi_pool` before the learner's answer is compared with it, so the two
references cannot drift apart unnoticed.

The learner's functions:

- forward ``fn(features, rois, output_size, spatial_scale) -> Tensor[R, C, h, w]``
- backward ``fn(features, rois, output_size, spatial_scale, grad_output) -> Tensor[N, C, H, W]``

with ``features (Tensor[N, C, H, W])`` float32, ``rois (Tensor[R, 5])`` (batch_index, x1, y1,
x2, y2) in image pixels, ``output_size`` a pair ``(h, w)`` and ``grad_output (Tensor[R, C, h, w])``.
Features and gradients are integer-valued, so every comparison is exact in any order of additions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch import Tensor

from ...roi_pool import roi_pool
from .core import Case, describe, differ, exercise, grade

__all__ = ["check_roi_pool_forward", "check_roi_pool_backward", "roi_pool_cases"]

_ROUNDING_HINT = (
    "Snap each corner with C's std::round (halves away from zero: 2.5 -> 3), e.g. "
    "math.floor(v + 0.5) for v >= 0; torch.round and Python's round send 2.5 to 2."
)


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def _forward_reference(features, rois, output_size, spatial_scale) -> Tensor:
    expected = torchvision.ops.roi_pool(features, rois, output_size, spatial_scale)
    ours = roi_pool(features, rois, output_size, spatial_scale)
    if not _same(ours, expected):  # an internal invariant, tested in tests/test_roi_pool.py
        raise AssertionError("fastrcnn_lite.roi_pool disagrees with torchvision.ops.roi_pool")
    return expected


def _backward_reference(features, rois, output_size, spatial_scale, grad_output) -> Tensor:
    grads = []
    for pool in (torchvision.ops.roi_pool, roi_pool):
        x = features.clone().requires_grad_()
        pool(x, rois, output_size, spatial_scale).backward(grad_output)
        grads.append(x.grad)
    if not _same(grads[0], grads[1]):
        raise AssertionError("fastrcnn_lite.roi_pool's gradient disagrees with torchvision's")
    return grads[0]


def _ints(shape, low, high, generator) -> Tensor:
    return torch.randint(low, high, shape, generator=generator).float()


def _rois(rows) -> Tensor:
    return torch.tensor(rows, dtype=torch.float32)  # (R, 5)


def roi_pool_cases(seed: int, random_cases: int) -> list[Case]:
    """The named edge cases, then random ones: ``Case(args=(features, rois, (h, w), scale))``.

    No notebook: :func:`check_roi_pool_forward` and :func:`check_roi_pool_backward`.
    """
    g = torch.Generator().manual_seed(seed)
    ramp = torch.arange(6 * 8, dtype=torch.float32).view(
        1, 1, 6, 8
    )  # distinct values, max bottom-right
    ties = torch.zeros(1, 1, 6, 8)
    ties[0, 0, 1:3, 1:4] = 5.0  # a 2 x 3 plateau of equal maxima
    spike = torch.zeros(1, 2, 6, 8)
    spike[0, :, 2, 3] = 9.0  # one large cell: the argmax of every bin that contains it
    cases = [
        Case(
            "one RoI inside the map, 2 x 2 bins",
            (ramp, _rois([[0, 0, 0, 3, 3]]), (2, 2), 1.0),
            hint="Corners are inclusive: x1 = 0, x2 = 3 covers 4 cells, so each bin is 2 x 2 cells.",
        ),
        Case(
            "all features negative",
            (-1.0 - ramp, _rois([[0, 1, 1, 6, 4]]), (2, 3), 1.0),
            hint="Start each bin's maximum from its first cell (or -inf), not from 0.",
        ),
        Case(
            "a 2 x 3 grid (h != w)",
            (ramp, _rois([[0, 0, 0, 7, 5]]), (2, 3), 1.0),
            hint="output_size is (h, w): h bins down the rows, w bins across the columns.",
        ),
        Case(
            "corners on half cells (x * spatial_scale = k + 0.5)",
            (
                torch.randperm(240, generator=g).float().view(1, 2, 10, 12),  # distinct values
                _rois([[0, 8, 24, 88, 104], [0, 120, 8, 168, 56]]),  # 6 x 6 and 4 x 4 cells
                (2, 2),
                1 / 16,
            ),
            hint=_ROUNDING_HINT,
        ),
        Case(
            "RoI partly outside the map (left and bottom): clipped bins, some empty",
            (ramp, _rois([[0, -5, 2, 3, 9]]), (3, 3), 1.0),
            hint="Clip every bin's rows to [0, H) and columns to [0, W) after shifting by the RoI's "
            "first cell; a bin left with no cell outputs 0.",
        ),
        Case(
            "RoI wholly outside the map: every bin empty",
            (ramp + 1, _rois([[0, 20, 20, 30, 28]]), (2, 2), 1.0),
            hint="A bin whose clipped range is empty outputs 0 (not -inf, not the max of nothing).",
        ),
        Case(
            "RoI smaller than the grid: neighbouring bins share cells",
            (ramp, _rois([[0, 2, 1, 3, 2]]), (3, 3), 1.0),
            hint="Bin i covers rows floor(i * roi_h / h) to ceil((i + 1) * roi_h / h), exclusive end, "
            "with roi_h / h a float: bins then overlap instead of being empty.",
        ),
        Case(
            "equal maxima in a bin (ties)",
            (ties, _rois([[0, 0, 0, 5, 3]]), (2, 2), 1.0),
            hint="A tie does not change the maximum's value; check the bin edges.",
        ),
        Case(
            "two images: the batch index picks the map",
            (
                torch.cat([ramp, 100 - ramp]),
                _rois([[1, 0, 0, 7, 5], [0, 0, 0, 7, 5]]),
                (2, 2),
                1.0,
            ),
            hint="Column 0 of rois is the image index n: pool from features[n].",
        ),
        Case(
            "degenerate RoI (x2 < x1): one cell wide",
            (ramp, _rois([[0, 5, 1, 2, 4]]), (2, 2), 1.0),
            hint="roi_w = max(x2 - x1 + 1, 1): a box with x2 < x1 still covers one column, x1.",
        ),
        Case(
            "one cell the argmax of several bins",
            (spike, _rois([[0, 2, 1, 3, 2]]), (3, 3), 1.0),
            hint="Bins overlap by a cell when roi_w / w is not an integer; each takes its own max.",
        ),
        Case(
            "no RoIs",
            (ramp, torch.zeros(0, 5), (2, 2), 1.0),
            hint="With R = 0 RoIs return an empty Tensor[0, C, h, w].",
        ),
    ]
    for _ in range(random_cases):
        n, c = (
            int(torch.randint(1, 3, (1,), generator=g)),
            int(torch.randint(1, 4, (1,), generator=g)),
        )
        height, width = (int(v) for v in torch.randint(4, 12, (2,), generator=g))
        scale = [1.0, 0.5, 1 / 8, 1 / 16][int(torch.randint(0, 4, (1,), generator=g))]
        r = int(torch.randint(1, 6, (1,), generator=g))
        xy = (torch.rand(r, 2, generator=g) * 1.3 - 0.15) * torch.tensor([width, height]) / scale
        wh = torch.rand(r, 2, generator=g) * torch.tensor([width, height]) / scale
        index = torch.randint(0, n, (r, 1), generator=g).float()
        rois = torch.cat([index, xy, xy + wh], dim=1).round()  # whole pixels: (R, 5)
        size = tuple(int(v) for v in torch.randint(1, 5, (2,), generator=g))
        features = _ints((n, c, height, width), -3, 4, g)  # few values: many ties
        cases.append(Case("random RoIs and map", (features, rois, size, scale)))
    return cases


def _exact(got, expected) -> str | None:
    return differ(got, expected, atol=0.0, rtol=0.0)


@exercise("04", points=4, task="RoI max pooling forward (loop or vectorised)")
def check_roi_pool_forward(fn: Callable, random_cases: int = 30) -> str:
    """``fn(features, rois, output_size, spatial_scale)`` must equal ``torchvision.ops.roi_pool``.

    Notebook 04 grades its RoI pooling forward exercise with it.
    """
    __tracebackhide__ = True
    return grade(
        fn,
        _forward_reference,
        roi_pool_cases(seed=4, random_cases=random_cases),
        name="check_roi_pool_forward",
        against="torchvision.ops.roi_pool (and fastrcnn_lite.roi_pool), exactly",
        compare=_exact,
        covered="half-cell corners, RoIs partly or wholly outside the map, empty bins, ties",
    )


def _routing(got, expected) -> str | None:
    why = _exact(got, expected)
    if why is None or not isinstance(got, Tensor) or got.shape != expected.shape:
        return why
    missing = (expected != 0) & (got.to(expected.dtype) == 0)
    if bool(missing.any()):
        where = tuple(int(i) for i in missing.nonzero()[0])
        return f"{why}; cell (n, c, y, x) = {where} should receive {describe(expected[where])}"
    return why


@exercise("04", points=3, task="RoI max pooling backward: route each gradient to its argmax")
def check_roi_pool_backward(fn: Callable, random_cases: int = 30) -> str:
    """``fn(features, rois, output_size, spatial_scale, grad_output) -> grad_features`` (eq. 4).

    Notebook 04 grades its RoI pooling backward exercise with it.
    """
    __tracebackhide__ = True
    g = torch.Generator().manual_seed(5)
    cases = []
    named_hints = {
        "equal maxima in a bin (ties)": "With equal maxima the gradient goes to the FIRST one in "
        "row-major order (the cell a strict > scan keeps); amax would split it among them.",
        "one cell the argmax of several bins": "A cell that is the argmax of several bins receives "
        "the sum of their gradients: add (+=, index_add_), do not overwrite.",
        "RoI partly outside the map (left and bottom): clipped bins, some empty": "An empty bin "
        "has no argmax: its gradient goes nowhere.",
        "corners on half cells (x * spatial_scale = k + 0.5)": _ROUNDING_HINT,
        "RoI smaller than the grid: neighbouring bins share cells": "A cell that is the argmax of "
        "several bins receives the sum of their gradients: add (+=, index_add_), do not overwrite.",
        "RoI wholly outside the map: every bin empty": "No bin has a cell, so no gradient reaches "
        "the map: return zeros shaped like features.",
        "no RoIs": "With R = 0 RoIs nothing is routed: return zeros shaped like features.",
    }
    for case in roi_pool_cases(seed=6, random_cases=random_cases):
        features, rois, size, scale = case.args
        grad_output = _ints((len(rois), features.shape[1], *size), -4, 5, g)
        grad_output[grad_output == 0] = 1  # every output sends something
        hint = named_hints.get(case.name, case.hint)
        cases.append(Case(case.name, (features, rois, size, scale, grad_output), hint=hint))
    # Two RoIs that overlap: their bins share argmax cells across RoIs.
    spike = torch.zeros(1, 1, 6, 8)
    spike[0, 0, 3, 4] = 7.0
    rois = _rois([[0, 1, 1, 5, 4], [0, 3, 2, 7, 5]])
    cases.insert(
        9,
        Case(
            "two overlapping RoIs share an argmax cell",
            (spike, rois, (2, 2), 1.0, torch.ones(2, 1, 2, 2)),
            hint="Gradients from different RoIs add up in the cell they share (eq. 4 sums over r).",
        ),
    )
    return grade(
        fn,
        _backward_reference,
        cases,
        name="check_roi_pool_backward",
        against="autograd through torchvision.ops.roi_pool (and fastrcnn_lite.roi_pool), exactly",
        compare=_routing,
        covered="ties, cells shared by several bins and RoIs, empty bins, half-cell corners",
    )
