"""Running a Fast R-CNN: the device, the scale cap, out-of-memory advice, a test set's detections.

Data-flow stage: the whole **image + proposals -> detections** path over a dataset (the test
procedure of section 3), and what that needs around the network: which device ``cfg.device``
means, which longer-side cap goes with the test scales, and what to lower when CUDA runs out of
memory. The network itself (``FastRCNN.detect_image``: one decoded image Tensor[3, H, W] and its
proposals Tensor[P, 4] -> ``boxes`` Tensor[D, 4], ``labels`` Tensor[D], ``scores`` Tensor[D]) is
in ``fastrcnn_lite.fast_rcnn``; :func:`detect` runs it over every image and times it as
``fastrcnn_lite.timing`` defines test time per image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .config import Config
from .progress import tqdm
from .timing import timed_detections

if TYPE_CHECKING:
    from .fast_rcnn import FastRCNN

__all__ = ["detect", "max_size_for", "resolve_device", "OOM_HINT"]

OOM_HINT = (
    "CUDA ran out of memory {where}. Lower the settings that size the work: the image scales "
    "(cfg.scales / cfg.test_scales and cfg.max_size; cfg.multiscale_max_size for a pyramid), "
    "cfg.batch_size_per_image (RoIs per image), cfg.proposals_per_image, or cfg.images_per_batch; "
    "or free memory held by other processes on the GPU."
)


def resolve_device(cfg: Config) -> torch.device:
    """``cfg.device``, with ``"auto"`` meaning cuda when available, else cpu.

    No notebook: the detector contract (``fastrcnn_lite.detector``), training and the commands
    put their networks there.
    """
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def max_size_for(cfg: Config, scales: tuple[int, ...]) -> int:
    """The longer-side cap for these scales: ``cfg.max_size`` for one, ``cfg.multiscale_max_size`` for a pyramid.

    Notebook 06 uses it for its one-scale and pyramid tests.
    """
    return cfg.max_size if len(scales) == 1 else cfg.multiscale_max_size


def detect(
    model: FastRCNN,
    dataset,
    proposals: list[Tensor],
    cfg: Config,
    progress: bool = True,
) -> tuple[list[dict[str, Tensor]], float]:
    """Run the detector over a dataset: the test procedure of section 3.

    Each image is scaled to ``cfg.test_scales`` (one scale, or a pyramid when there are
    several; cap ``cfg.max_size`` / ``cfg.multiscale_max_size``), its proposals go through
    the network and :meth:`FastRCNN.postprocess <fastrcnn_lite.fast_rcnn.FastRCNN.postprocess>`.
    Notebook 06 evaluates Fast R-CNN with it (notebook 08 the full VOC run).

    What is timed (``fastrcnn_lite.timing``'s test time per image): each image is decoded and
    copied with its proposals to the model's device before the clock starts; the clock covers
    :meth:`~fastrcnn_lite.fast_rcnn.FastRCNN.detect_image` alone (network and post-processing,
    CUDA synchronised before and after), and the copy of its detections to the CPU comes after.
    Each image is timed once; the figure is the median over the images.

    Args:
        model: a :class:`~fastrcnn_lite.fast_rcnn.FastRCNN` (put in eval mode here).
        dataset: a :class:`~fastrcnn_lite.voc.VOCDataset` (``dataset[i] -> (image, target)``).
        proposals (list of Tensor[P_i, 4]): one per image, original pixels.

    Returns:
        (detections, seconds_per_image): one dict (``boxes``, ``labels``, ``scores``, on the CPU,
        original pixels) per image, and the median test time per image defined above (image
        decoding and proposals excluded, as in the paper's timings).
    """
    if len(proposals) != len(dataset):
        raise ValueError(
            f"Need one proposal tensor per image: {len(dataset)} images, {len(proposals)} proposal tensors."
        )
    device = next(model.parameters()).device
    model.eval()
    scales = tuple(cfg.test_scales)
    max_size = max_size_for(cfg, scales)
    current = 0  # the image being detected, for the out-of-memory message

    def samples():  # decoded and on the device: outside the clock
        nonlocal current
        for i in tqdm(range(len(dataset)), desc="detect", disable=not progress):
            current = i
            yield dataset[i][0].to(device), proposals[i].to(device)

    def detect_image(image: Tensor, props: Tensor) -> dict[str, Tensor]:
        return model.detect_image(image, props, scales, max_size, cfg.pyramid_target_area)

    def to_cpu(det: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.cpu() for k, v in det.items()}

    try:
        return timed_detections(detect_image, samples(), device=device, keep=to_cpu)
    except torch.cuda.OutOfMemoryError as e:
        raise torch.cuda.OutOfMemoryError(
            OOM_HINT.format(where=f"detecting image {current}")
        ) from e
