"""fastrcnn_lite.backbones.OneDNNLinear against nn.Linear: same parameters, initialisation and
state dict; the same outputs (to float rounding) on the inference path, the same gradients on
the training path."""

import torch
from torch import nn

from fastrcnn_lite.backbones import OneDNNLinear, small_backbone, vgg16_backbone
from fastrcnn_lite.fast_rcnn_head import FastRCNNHead
from fastrcnn_lite.svd import svd_linear


def test_same_initialisation_and_state_dict_as_nn_linear():
    torch.manual_seed(3)
    ours = OneDNNLinear(50, 7)
    torch.manual_seed(3)
    plain = nn.Linear(50, 7)
    assert ours.state_dict().keys() == plain.state_dict().keys()
    assert all(
        torch.equal(a, b) for a, b in zip(ours.parameters(), plain.parameters(), strict=True)
    )
    plain.load_state_dict(ours.state_dict())  # caches written by either load into the other


def test_inference_matches_nn_linear_and_training_is_nn_linear():
    g = torch.Generator().manual_seed(0)
    for bias in (True, False):
        ours = OneDNNLinear(300, 40, bias=bias)
        plain = nn.Linear(300, 40, bias=bias)
        plain.load_state_dict(ours.state_dict())
        x = torch.randn(700, 300, generator=g)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-5)
        with torch.inference_mode():
            torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-5)
        # With a gradient wanted it *is* nn.Linear: the same bits, the same gradients.
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), plain(xb)
        assert torch.equal(ya, yb)
        ya.square().sum().backward()
        yb.square().sum().backward()
        assert torch.equal(xa.grad, xb.grad) and torch.equal(ours.weight.grad, plain.weight.grad)
        # Inputs it does not take (float64, 3-D) go to nn.Linear.
        with torch.no_grad():
            assert torch.equal(ours.double()(x.double()), plain.double()(x.double()))
            ours.float(), plain.float()
            x3 = x.view(7, 100, 300)
            torch.testing.assert_close(ours(x3), plain(x3), rtol=1e-5, atol=1e-5)


def test_every_region_fc_layer_takes_the_onednn_path():
    small = small_backbone(width=8, fc_dim=16, pool_size=(3, 3))
    assert [type(m) for m in small.fc if isinstance(m, nn.Linear)] == [OneDNNLinear] * 2
    with torch.device("meta"):
        vgg = vgg16_backbone(None)
    assert [type(m) for m in vgg.fc if isinstance(m, nn.Linear)] == [OneDNNLinear] * 2
    assert {type(m) for m in svd_linear(nn.Linear(20, 10), 4)} == {OneDNNLinear}
    head = FastRCNNHead(small.fc, 16, num_classes=3)
    assert type(head.cls_score) is type(head.bbox_pred) is OneDNNLinear
