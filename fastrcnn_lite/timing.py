"""Timing: one definition of "test time per image" for every notebook and benchmark.

Data-flow stage: none (measurement); it wraps the **image -> ... -> detections** path of any
detector. Taught in ``notebooks/06_fast_rcnn.ipynb`` (Fast R-CNN's test time, truncated SVD, the
image pyramid); the other notebooks use the same definition.

**Test time per image** (the paper's "test time, excluding object proposal time"): the wall-clock
seconds from a call with the *decoded* image (Tensor[3, H, W], already on the detector's device)
and its proposals (Tensor[P, 4]) until the detections are returned; on CUDA the device is
synchronised before the clock starts and before it stops, so queued kernels are counted. Image
decoding, proposal computation and copies to the device are outside. The figure reported is the
**median** over all measured (image, repeat) pairs, after unmeasured warm-up calls: a median is not
moved by the odd call that another process on a busy machine slowed down.

The same definition serves a whole test set: :func:`timed_detections` runs one detector over
every (decoded image, proposals) pair, keeps the detections and reports the median of the timed
calls (what ``fast_rcnn_run.detect`` and ``SVMDetector.detect`` return as seconds per image).

Several detectors are timed **interleaved**, image by image (A, B, A, B, ...), so a burst of load
hits them alike and their ratio stays fair. When the machine was busier than its cores (the
one-minute load average above the number of CPUs at the end of a measurement), a
:class:`BusyMachineWarning` says that the figures are distorted: PyTorch's threads then wait
for each other at every operation, which costs most to detectors made of many small operations.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "timed_call",
    "median_seconds",
    "time_per_image",
    "timed_detections",
    "BusyMachineWarning",
    "warn_if_busy",
]


class BusyMachineWarning(RuntimeWarning):
    """Timings were taken while other work kept every core busy.

    Notebook 06 may show it (its test-time measurements); the timing helpers below raise it.
    """


def warn_if_busy(what: str = "these timings") -> float | None:
    """Warn (:class:`BusyMachineWarning`) when the 1-minute load average exceeds the CPU count.

    Returns the load average (None where the system does not report one). No notebook: every
    helper of this module calls it at the end of a measurement.
    """
    if not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:
        warnings.warn(
            f"the machine was busy while measuring {what} (load average {load:.1f} on {cores} "
            "CPUs): other programs shared the cores, so the times are inflated and their ratios "
            "distorted. Compare timings taken on an otherwise idle machine.",
            BusyMachineWarning,
            stacklevel=3,
        )
    return load


def _synchronize(device) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(fn: Callable[..., Any], *args, device=None, **kwargs) -> tuple[Any, float]:
    """Call ``fn(*args, **kwargs)`` once; return ``(its result, seconds)``.

    device: the device ``fn`` computes on; on CUDA it is synchronised before and after the call.
    No notebook: the clock under :func:`median_seconds`, :func:`time_per_image` and
    :func:`timed_detections`.
    """
    _synchronize(device)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    _synchronize(device)
    return result, time.perf_counter() - start


def median_seconds(
    step: Callable[[], Any], repeats: int = 5, warmup: int = 1, device=None
) -> float:
    """Median seconds of ``repeats`` timed calls of ``step()``, after ``warmup`` untimed ones.

    For a part of the computation (the conv layers of one batch, the head on 2000 RoIs); whole
    images go through :func:`time_per_image`. Notebook 06 times the conv layers and the head with it.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(
            f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}."
        )
    for _ in range(warmup):
        step()
    _synchronize(device)
    seconds = statistics.median(timed_call(step, device=device)[1] for _ in range(repeats))
    warn_if_busy("a step's time")
    return seconds


def time_per_image(
    detectors: Mapping[str, Callable[[Tensor, Tensor], Any]],
    samples: Iterable[tuple[Tensor, Tensor]],
    repeats: int = 1,
    warmup: int = 1,
    device=None,
) -> dict[str, float]:
    """Test time per image of each detector, as the module docstring defines it.

    Notebook 06 compares Fast R-CNN with and without truncated SVD, and one scale with the image
    pyramid, with it.

    Args:
        detectors: ``name -> detect(image, proposals)``, e.g.
            ``lambda im, p: model.detect_image(im, p, scales, max_size, target_area)``.
        samples: ``(image Tensor[3, H, W], proposals Tensor[P, 4])`` pairs, decoded and on
            ``device`` (e.g. ``[(test_ds[i][0], test_props[i]) for i in range(30)]``).
        repeats: timed calls per detector and image.
        warmup: untimed calls per detector on the first image (first-call allocations, caches).
        device: where the detectors compute; CUDA is synchronised around every timed call.

    Returns:
        ``name -> median seconds per image`` over all images and repeats.
    """
    if not detectors:
        raise ValueError("detectors is empty; pass {'name': detect_function}.")
    if repeats < 1 or warmup < 0:
        raise ValueError(
            f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}."
        )
    times: dict[str, list[float]] = {name: [] for name in detectors}
    for index, (image, proposals) in enumerate(samples):
        if index == 0:
            for _ in range(warmup):
                for detect in detectors.values():
                    detect(image, proposals)
        for _ in range(repeats):
            for name, detect in detectors.items():  # interleaved: A, B, A, B, ...
                times[name].append(timed_call(detect, image, proposals, device=device)[1])
    if not times[next(iter(times))]:
        raise ValueError("samples is empty; pass at least one (image, proposals) pair.")
    warn_if_busy("test time per image")
    return {name: statistics.median(values) for name, values in times.items()}


def timed_detections(
    detect: Callable[[Tensor, Tensor], Any],
    samples: Iterable[tuple[Tensor, Tensor]],
    device=None,
    warmup: int = 0,
    keep: Callable[[Any], Any] | None = None,
) -> tuple[list, float]:
    """Run one detector over a test set: its detections and its test time per image.

    Each ``(image, proposals)`` pair gets one call ``detect(image, proposals)``, timed by
    :func:`timed_call` as the module docstring defines test time per image: the pairs come
    decoded and on ``device`` (whatever ``samples`` does to make them, decoding an image or
    copying it, happens outside the clock), and ``keep`` (e.g. a copy of the detections to the
    CPU) runs after the clock stops. No notebook: ``fast_rcnn_run.detect`` (notebooks 06 and 08
    call it) and ``SVMDetector.detect`` (notebooks 03 and 05) run their test sets through it.

    Args:
        detect: ``detect(image Tensor[3, H, W], proposals Tensor[P, 4]) -> detections``.
        samples: ``(image, proposals)`` pairs, e.g. a generator that decodes each image.
        device: where ``detect`` computes; CUDA is synchronised around every timed call.
        warmup: untimed calls on the first image before its timed one (0: none; the median is
            not moved by a slow first call when there are many images).
        keep: applied to each call's result, outside the clock; None keeps it as it is.

    Returns:
        (one ``keep(detect(image, proposals))`` per sample in order, the median seconds of the
        timed calls; 0.0 when ``samples`` is empty).
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0; got {warmup}.")
    results, times = [], []
    for index, (image, proposals) in enumerate(samples):
        if index == 0:
            for _ in range(warmup):
                detect(image, proposals)
        result, seconds = timed_call(detect, image, proposals, device=device)
        times.append(seconds)
        results.append(result if keep is None else keep(result))
    if not times:
        return results, 0.0
    warn_if_busy("test time per image")
    return results, statistics.median(times)
