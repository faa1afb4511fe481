"""Backbones: the conv layers that turn an image into a feature map, and the fc6/fc7 layers.

Data-flow stage: **backbone feature map** (and the fc layers the region features feed).
R-CNN, SPPnet and Fast R-CNN all take the same :class:`Backbone` parts, so the course can
compare them with one network.

The paper's three transformations of an ImageNet network (section 2.2) happen here and in
``fast_rcnn.py``: (1) the last max-pool is dropped from ``body`` (RoI pooling to ``pool_size``
takes its place); (2) the last fc layer and the 1000-way softmax are dropped from ``fc``
(the sibling ``cls_score`` / ``bbox_pred`` layers take their place); (3) the network is fed
(images, RoIs) by ``FastRCNN``.

Backbones:
    * :func:`small_backbone` -- a 4-conv network, stride 8, trained from scratch on the embedded
      dataset in minutes on two CPU cores (the course's default).
    * :func:`alexnet_backbone` -- torchvision's AlexNet, the counterpart of the paper's CaffeNet
      ("S"), stride 16, pool 6x6.
    * :func:`vgg16_backbone` -- VGG16 ("L"), stride 16 (conv5_3), pool 7x7.

The small jobs every system does with its network, written once here: :func:`new_backbone`
(the one backbone-by-name factory, ``cfg.backbone``), :func:`backbone_size` (what rebuilds a
saved small backbone), :func:`count_parameters` and :func:`build_sgd` (SGD with the paper's
weight / bias / BatchNorm-scale groups; ``train.build_optimizer`` is it with ``cfg``'s values).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "Backbone",
    "Normalize",
    "OneDNNLinear",
    "small_backbone",
    "alexnet_backbone",
    "vgg16_backbone",
    "freeze_below",
    "BACKBONE_NAMES",
    "new_backbone",
    "backbone_size",
    "count_parameters",
    "build_sgd",
]

BACKBONE_NAMES = ("small", "alexnet", "vgg16")  # what cfg.backbone may name

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """Subtract the mean and divide by the std per channel: images in [0, 1] go straight in.

    No notebook: the first layer of every backbone's ``body``.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:  # (N, 3, H, W) -> (N, 3, H, W)
        return (images - self.mean) / self.std


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` (the same parameters, initialisation and state dict) whose CPU inference
    runs oneDNN's matrix product, the library PyTorch's CPU convolutions already run in.

    No notebook: fc6 and fc7 of every backbone, SPPnet's pyramid fc6 and the truncated-SVD
    layers are built with it, so the region-wise fc layers of every system take the same path.

    Why: with every proposal of an image in one batch (P = 2000 rows), fc6 and fc7 are large
    matrix products, and PyTorch's default CPU matrix product (MKL) ran them at about half the
    multiply-accumulates per second of oneDNN on an AMD EPYC (fc6 of the small backbone, 2000 x
    3200 x 256, 2 threads: 18 ms against 8 ms), while the conv layers (oneDNN) ran at full speed.
    That is the code, not the arithmetic: it would make Fast R-CNN's speed-up over R-CNN depend
    on the CPU's brand. Training (a gradient wanted), other devices and dtypes use ``nn.Linear``.
    """

    _onednn_ok = hasattr(torch.backends, "mkldnn") and torch.backends.mkldnn.is_available()

    def forward(self, x: Tensor) -> Tensor:  # (R, in_features) -> (R, out_features)
        wants_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if (OneDNNLinear._onednn_ok and not wants_grad and x.device.type == "cpu"
                and x.dtype == self.weight.dtype == torch.float32 and x.dim() == 2):  # fmt: skip
            try:
                return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
            except (
                RuntimeError,
                AttributeError,
            ):  # a build without the op: plain PyTorch from now on
                OneDNNLinear._onednn_ok = False
        return super().forward(x)


def _onednn_linears(module: nn.Module) -> nn.Module:
    """Every ``nn.Linear`` inside ``module`` becomes a :class:`OneDNNLinear` (same parameters)."""
    for m in module.modules():
        if type(m) is nn.Linear:
            m.__class__ = OneDNNLinear
    return module


@dataclass(eq=False)
class Backbone:
    """The parts of a classification network that a region-based detector reuses.

    Notebook 04 builds one (:func:`small_backbone`); every system's notebook uses one.

    Attributes:
        name: "small", "alexnet" or "vgg16".
        body (nn.Module): images Tensor[N, 3, H, W] in [0, 1] -> Tensor[N, C, ~H/stride, ~W/stride].
        fc (nn.Module): fc6 and fc7 with their ReLUs (and dropout): Tensor[R, C*h*w] -> Tensor[R, fc_dim].
        out_channels: C.
        stride: image pixels per feature cell (spatial_scale = 1 / stride): 16 for VGG16 conv5_3.
        pool_size: (h, w) the fc6 layer expects: 7x7 for VGG16, 6x6 for AlexNet.
        fc_dim: width of fc7's output (4096 for VGG16 and AlexNet).
        input_size: R-CNN's warp size (224 for VGG16, 227 for CaffeNet); ``body`` maps an
            ``input_size`` square to roughly ``pool_size`` cells.
        layer_names: names of ``body``'s layers in order, for :func:`freeze_below`.
    """

    name: str
    body: nn.Module
    fc: nn.Module
    out_channels: int
    stride: int
    pool_size: tuple[int, int]
    fc_dim: int
    input_size: int
    layer_names: dict[str, int]


def _load_local(model: nn.Module, path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)


def small_backbone(
    width: int = 32, fc_dim: int = 256, pool_size: tuple[int, int] = (5, 5)
) -> Backbone:
    """A small VGG-style network for the embedded dataset (random init, trained from scratch).

    Notebook 04 runs RoI pooling on its feature map.

    body: 4 blocks of conv3x3 + BatchNorm + ReLU, max-pool after the first three -> stride 8;
    channels ``width, 2 width, 4 width, 4 width``. fc: fc6 (C*h*w -> fc_dim), fc7 (fc_dim -> fc_dim).
    """
    c1, c2, c3 = width, 2 * width, 4 * width

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    layers = [Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))]
    layers += block(3, c1) + [nn.MaxPool2d(2)]  # conv1, stride 2
    layers += block(c1, c2) + [nn.MaxPool2d(2)]  # conv2, stride 4
    layers += block(c2, c3) + [nn.MaxPool2d(2)]  # conv3, stride 8
    layers += block(c3, c3)  # conv4, stride 8
    body = nn.Sequential(*layers)
    h, w = pool_size
    fc = nn.Sequential(
        OneDNNLinear(c3 * h * w, fc_dim), nn.ReLU(inplace=True),  # fc6
        OneDNNLinear(fc_dim, fc_dim), nn.ReLU(inplace=True),  # fc7
    )  # fmt: skip
    names = {"conv1": 1, "conv2": 5, "conv3": 9, "conv4": 13}
    return Backbone("small", body, fc, c3, 8, pool_size, fc_dim, 8 * h, names)


def alexnet_backbone(weights: str | Path | None = None) -> Backbone:
    """torchvision's AlexNet (CaffeNet's counterpart, the paper's model "S").

    No notebook: :func:`new_backbone` builds it for ``cfg.backbone = "alexnet"``.

    Args:
        weights: None (random init), a torchvision weights name such as ``"IMAGENET1K_V1"``
            (downloads on first use), or the path of a local state-dict file (offline machines).
    """
    from torchvision.models import alexnet

    tv_weights = weights if isinstance(weights, str) and not Path(weights).suffix else None
    model = alexnet(weights=tv_weights)
    if weights is not None and tv_weights is None:
        _load_local(model, weights)
    body = nn.Sequential(
        Normalize(IMAGENET_MEAN, IMAGENET_STD), *list(model.features)[:-1]
    )  # drop pool5
    fc = _onednn_linears(
        nn.Sequential(*list(model.classifier)[:-1])
    )  # drop fc8: dropout, fc6, relu, dropout, fc7, relu
    names = {"conv1": 1, "conv2": 4, "conv3": 7, "conv4": 9, "conv5": 11}
    return Backbone("alexnet", body, fc, 256, 16, (6, 6), 4096, 227, names)


def vgg16_backbone(weights: str | Path | None = None) -> Backbone:
    """torchvision's VGG16 (the paper's model "L"): conv5_3 at stride 16, RoI pool 7x7.

    Notebook 07 counts its multiply-adds.

    Args:
        weights: None, a torchvision weights name (``"IMAGENET1K_V1"``), or a local state-dict path.
    """
    from torchvision.models import vgg16

    tv_weights = weights if isinstance(weights, str) and not Path(weights).suffix else None
    model = vgg16(weights=tv_weights)
    if weights is not None and tv_weights is None:
        _load_local(model, weights)
    body = nn.Sequential(
        Normalize(IMAGENET_MEAN, IMAGENET_STD), *list(model.features)[:-1]
    )  # drop pool5
    fc = _onednn_linears(
        nn.Sequential(*list(model.classifier)[:-1])
    )  # drop fc8: fc6, relu, dropout, fc7, relu, dropout
    convs = [
        i + 1 for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)
    ]  # +1: Normalize
    stage_names = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                   "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]  # fmt: skip
    names = dict(zip(stage_names, convs, strict=True))
    return Backbone("vgg16", body, fc, 512, 16, (7, 7), 4096, 224, names)


def freeze_below(backbone: Backbone, trainable_from: str) -> int:
    """Freeze every ``body`` layer before the layer named ``trainable_from``.

    No notebook: Fast R-CNN's and SPPnet's builders freeze with it (notebook 05 explains
    SPPnet's frozen conv layers).

    The paper trains VGG16 from conv3_1 up (section 4.5). SPPnet freezes the whole body: pass
    ``"fc6"``. BatchNorm layers in a frozen part are also put in eval mode by the caller's
    ``train()`` not touching them (their parameters stop learning; statistics keep updating).

    Returns:
        the number of parameters frozen.
    """
    if trainable_from == "fc6":
        first = len(backbone.body)
    elif trainable_from in backbone.layer_names:
        first = backbone.layer_names[trainable_from]
    else:
        raise ValueError(
            f"trainable_from must be 'fc6' or one of {list(backbone.layer_names)} for the {backbone.name} "
            f"backbone; got {trainable_from!r}."
        )
    frozen = 0
    for i, layer in enumerate(backbone.body):
        for p in layer.parameters():
            p.requires_grad_(i >= first)
            frozen += p.numel() if i < first else 0
    return frozen


def new_backbone(
    name: str,
    pool_size: tuple[int, int] = (5, 5),
    weights: str | Path | None = None,
    width: int = 32,
    fc_dim: int = 256,
) -> Backbone:
    """The backbone ``name`` (``cfg.backbone``) names: random weights unless ``weights`` is given.

    No notebook: every system builds its network with it.

    The one backbone-by-name factory (Fast R-CNN's random start, the pre-trained network, a
    cached R-CNN / SPPnet rebuilt before its state is loaded, the detector benchmark). Weights
    are drawn from torch's global RNG: seed it first.

    Args:
        name: "small", "alexnet" or "vgg16".
        pool_size: (h, w) of the small backbone's fc6 input (``cfg.pool_size``); AlexNet's
            (6, 6) and VGG16's (7, 7) are fixed by their fc6.
        weights: AlexNet / VGG16 only: a torchvision weights name (``"IMAGENET1K_V1"``) or a
            local state-dict path; None: random init.
        width, fc_dim: the small backbone's size (see :func:`backbone_size`).
    """
    if name == "small":
        if weights is not None:
            raise ValueError(
                f"weights={weights!r} given for the small backbone, which has no published weights "
                "(it is pre-trained by fastrcnn_lite.pretrain); pass weights=None."
            )
        return small_backbone(width=width, fc_dim=fc_dim, pool_size=tuple(pool_size))
    if name == "alexnet":
        return alexnet_backbone(weights)
    if name == "vgg16":
        return vgg16_backbone(weights)
    raise ValueError(f"backbone (cfg.backbone) must be one of {BACKBONE_NAMES}; got {name!r}.")


def backbone_size(backbone: Backbone) -> dict:
    """``{"width": ..., "fc_dim": ...}`` of a small backbone, ``{}`` for the others: the keyword
    arguments that make :func:`new_backbone` rebuild it (saved beside a cached model's weights).

    No notebook: cached R-CNN and SPPnet models save it beside their weights.
    """
    if backbone.name != "small":
        return {}
    return {"width": backbone.out_channels // 4, "fc_dim": backbone.fc_dim}


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters (numbers) in ``module``; only those with ``requires_grad`` if
    ``trainable_only``.

    Notebook 06 counts truncated SVD's saving with it.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def build_sgd(
    model: nn.Module,
    lr: float,
    momentum: float,
    weight_decay: float,
    bias_lr_factor: float = 2.0,
) -> torch.optim.SGD:
    """SGD with the paper's parameter groups: weights decayed at lr, biases at ``bias_lr_factor``
    x lr without decay, BatchNorm scales at lr without decay (like biases for decay).

    No notebook: every training loop (pre-training, R-CNN, SPPnet, Fast R-CNN) builds its
    optimiser with it.

    The Caffe prototxts of the paper give every layer's weights ``lr_mult: 1, decay_mult: 1`` and
    its biases ``lr_mult: 2, decay_mult: 0`` (``bias_lr_factor=2``); Caffe's networks had no
    BatchNorm, so the small backbone's scales get the base lr and, as the biases, no decay.
    Frozen parameters (``requires_grad=False``) are left out.

    Returns:
        SGD with up to three groups, ``name`` "weights", "biases", "norm", each with its
        ``lr_factor`` (a schedule sets ``group["lr"] = lr_now * group["lr_factor"]``).
    """
    groups = {"weights": [], "biases": [], "norm": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("bias"):
            groups["biases"].append(p)
        elif p.dim() == 1:
            groups["norm"].append(p)
        else:
            groups["weights"].append(p)
    settings = {  # name: (lr factor, weight decay)
        "weights": (1.0, weight_decay),
        "biases": (bias_lr_factor, 0.0),
        "norm": (1.0, 0.0),
    }
    param_groups = [
        {
            "params": params,
            "name": name,
            "lr_factor": settings[name][0],
            "lr": lr * settings[name][0],
            "weight_decay": settings[name][1],
        }  # fmt: skip
        for name, params in groups.items()
        if params
    ]
    return torch.optim.SGD(param_groups, lr=lr, momentum=momentum)
