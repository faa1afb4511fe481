"""Fast R-CNN's head: fc6, fc7 and the two sibling output layers that replace fc8.

Data-flow stage: **heads**. The second of the paper's three transformations of a pre-trained
network (section 2.2): the last fully connected layer and its 1000-way softmax are replaced by
two sibling layers, a (K + 1)-way classifier ``cls_score`` and class-specific box regressors
``bbox_pred``::

    pooled Tensor[R, C, h, w] --flatten, fc6, fc7--> Tensor[R, fc_dim]
        --cls_score--> class_logits Tensor[R, K + 1]      (background is column 0)
        --bbox_pred--> box_deltas   Tensor[R, 4K]         (class k in columns 4(k-1)..4k-1)

R RoIs of a batch in, two tensors per RoI out; ``fastrcnn_lite.fast_rcnn.FastRCNN`` turns them
into the multi-task loss (training) or detections (test).
"""

from __future__ import annotations

from torch import Tensor, nn

from .backbones import OneDNNLinear

__all__ = ["FastRCNNHead"]


class FastRCNNHead(nn.Module):
    """fc6, fc7 and the two sibling layers: ``cls_score`` (K + 1) and ``bbox_pred`` (4K).

    Notebook 06 builds it (through :func:`~fastrcnn_lite.fast_rcnn.build_fast_rcnn`) and
    compresses its fc layers with truncated SVD.

    Args:
        fc (nn.Module): fc6 and fc7 with their ReLUs (``Backbone.fc``): Tensor[R, C*h*w] -> Tensor[R, fc_dim].
        fc_dim: fc7's output width (4096 for VGG16).
        num_classes: K foreground classes (background is class 0 of ``cls_score``).
        cls_init_std, bbox_init_std: the new layers start from N(0, 0.01) and N(0, 0.001)
            weights and zero biases (section 2.2).
    """

    def __init__(
        self,
        fc: nn.Module,
        fc_dim: int,
        num_classes: int,
        cls_init_std: float = 0.01,
        bbox_init_std: float = 0.001,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(
                f"num_classes must be >= 1 (foreground classes, background excluded); got {num_classes}."
            )
        self.num_classes = num_classes
        self.fc = fc
        self.cls_score = OneDNNLinear(fc_dim, num_classes + 1)  # nn.Linear, faster on a CPU
        self.bbox_pred = OneDNNLinear(fc_dim, 4 * num_classes)
        nn.init.normal_(self.cls_score.weight, std=cls_init_std)
        nn.init.normal_(self.bbox_pred.weight, std=bbox_init_std)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """pooled (Tensor[R, C, h, w]) -> (class_logits Tensor[R, K + 1], box_deltas Tensor[R, 4K])."""
        x = self.fc(pooled.flatten(1))  # (R, C*h*w) -> (R, fc_dim)
        return self.cls_score(x), self.bbox_pred(x)
