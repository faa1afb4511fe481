"""Argument checks of RoI pooling: errors that name the argument, what was expected and what came.

Data-flow stage: backbone feature map -> **region features**. Used by :mod:`fastrcnn_lite.roi_pool`
(the public functions) and its teaching loop; every check raises before any work is done, with
the shapes in the message (``input`` Tensor[N, C, H, W]; ``boxes`` Tensor[R, 5] RoIs
``(batch index, x1, y1, x2, y2)`` or a list of N Tensor[P_i, 4]). Notebook 04 shows these
messages when a learner passes the wrong thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .boxes import boxes_to_rois

__all__: list[str] = []  # private helpers of roi_pool


def _output_size_pair(output_size) -> tuple[int, int]:
    """``7`` or ``(7, 7)`` -> ``(7, 7)``; anything else raises."""
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        size = (output_size, output_size)
    elif (
        isinstance(output_size, Sequence)
        and len(output_size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in output_size)
    ):
        size = (int(output_size[0]), int(output_size[1]))
    else:
        raise TypeError(
            f"output_size must be an int or a pair of ints (h, w), e.g. 7 or (7, 7); got {output_size!r}."
        )
    if size[0] < 0 or size[1] < 0:
        raise ValueError(f"output_size must not be negative, e.g. (7, 7); got {size}.")
    return size


def _check_input(input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(
            f"input must be a Tensor[N, C, H, W] feature map; got {type(input).__name__}."
        )
    if input.dim() != 4:
        hint = (
            " For one image use input[None] to make it Tensor[1, C, H, W]."
            if input.dim() == 3
            else ""
        )
        raise ValueError(
            f"input must be a 4-D Tensor[N, C, H, W]; got shape {tuple(input.shape)}.{hint}"
        )
    if input.dtype not in (torch.float32, torch.float64, *_LOW_PRECISION):
        raise TypeError(
            "input must be a floating-point feature map (float32, float64, float16 or bfloat16, "
            f"as torchvision's kernels); got dtype {input.dtype}. Use input.float()."
        )


# Computed in float32 and cast back: a max picks one of the values, and float16/bfloat16 ->
# float32 -> float16/bfloat16 is exact, so the result is the same bits as a kernel working in the
# low precision; the RoI corners are scaled in float32, as torchvision's kernel does (Half * float).
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _float32(boxes):
    """Tensor[R, 5] or a list of Tensor[P_i, 4] in float32 (exact for float16/bfloat16 corners)."""
    return [b.float() for b in boxes] if isinstance(boxes, (list, tuple)) else boxes.float()


def _check_scale(spatial_scale) -> float:
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float)):
        raise TypeError(
            f"spatial_scale must be a number such as 1/16 (VGG16 conv5); got {spatial_scale!r}."
        )
    if not math.isfinite(spatial_scale) or spatial_scale <= 0:
        raise ValueError(
            f"spatial_scale must be a positive finite number such as 1/16; got {spatial_scale!r}."
        )
    return float(spatial_scale)


def _as_rois(input: Tensor, boxes) -> Tensor:
    """Validate ``boxes`` (Tensor[R, 5] or a list of per-image Tensor[P_i, 4]) and return Tensor[R, 5]."""
    num_images = input.shape[0]
    if isinstance(boxes, (list, tuple)):
        if len(boxes) > num_images:
            raise ValueError(
                f"boxes has {len(boxes)} per-image entries but input holds {num_images} images; "
                "pass one Tensor[P_i, 4] per image."
            )
        for i, b in enumerate(boxes):
            if isinstance(b, Tensor) and b.device != input.device:
                raise ValueError(
                    f"boxes[{i}] is on {b.device} but input is on {input.device}; move it with .to(input.device)."
                )
        rois = boxes_to_rois(list(boxes))  # (R, 5)
        if len(boxes) == 0 or rois.shape[0] == 0:
            rois = rois.to(
                device=input.device, dtype=input.dtype if rois.shape[0] == 0 else rois.dtype
            )
    elif isinstance(boxes, Tensor):
        rois = boxes
        if rois.dim() != 2 or rois.shape[1] != 5:
            hint = ""
            if rois.dim() == 2 and rois.shape[1] == 4:
                hint = (
                    " It has 4 columns: per-image boxes are expected as a list, one Tensor[P_i, 4] "
                    "per image ([boxes] for one image), or use boxes_to_rois(list) to add the batch index."
                )
            raise ValueError(
                f"boxes must be Tensor[R, 5] (batch_index, x1, y1, x2, y2) or a list of per-image Tensor[P_i, 4]; got shape {tuple(rois.shape)}.{hint}"
            )
    else:
        raise TypeError(
            f"boxes must be Tensor[R, 5] (batch_index, x1, y1, x2, y2) or a list of per-image Tensor[P_i, 4]; got {type(boxes).__name__}."
        )
    if not rois.is_floating_point():
        raise TypeError(
            f"boxes must be floating point like input ({input.dtype}); got dtype {rois.dtype}. Use boxes.to(input.dtype)."
        )
    if rois.dtype != input.dtype:
        raise TypeError(
            f"boxes and input must have the same dtype (the corner arithmetic runs in it); got boxes {rois.dtype} "
            f"and input {input.dtype}. Use boxes.to(input.dtype)."
        )
    if rois.device != input.device:
        raise ValueError(
            f"boxes are on {rois.device} but input is on {input.device}; move them with .to(input.device)."
        )
    if rois.shape[0] > 0:
        if not torch.isfinite(rois).all():
            bad = int((~torch.isfinite(rois)).any(dim=1).nonzero()[0, 0])
            raise ValueError(
                f"boxes must have finite coordinates; row {bad} is {rois[bad].tolist()}."
            )
        index = rois[:, 0]
        bad_rows = ((index != index.round()) | (index < 0) | (index >= num_images)).nonzero()
        if len(bad_rows):
            bad = int(bad_rows[0, 0])
            raise ValueError(
                f"batch index (column 0 of boxes) must be an integer in [0, {num_images}) for an input of "
                f"{num_images} images; row {bad} has {rois[bad, 0].item()}."
            )
    return rois.detach()


def _check_table_levels(levels) -> tuple[int, int] | None:
    if levels is None:
        return None
    if (
        not isinstance(levels, Sequence)
        or len(levels) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in levels)
    ):
        raise ValueError(
            f"levels must be None or a pair of positive ints (levels_y, levels_x) such as (1, 1) "
            f"(direct max) or (3, 3); got {levels!r}."
        )
    return int(levels[0]), int(levels[1])


def _check_levels(levels) -> tuple[int, ...]:
    if isinstance(levels, int) or not isinstance(levels, Sequence) or len(levels) == 0:
        raise TypeError(
            f"levels must be a non-empty sequence of grid sizes such as (6, 3, 2, 1); got {levels!r}."
        )
    for n in levels:
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(
                f"levels must be positive ints such as (6, 3, 2, 1); got {tuple(levels)!r}."
            )
    return tuple(int(n) for n in levels)
