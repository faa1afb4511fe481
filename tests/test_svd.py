"""Truncated SVD of fc6/fc7 (paper section 3.1) against torch.linalg.svd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastrcnn_lite.svd import count_parameters, svd_linear, truncated_svd

from .test_fast_rcnn import ShapesDataset, jittered_proposals, tiny_model


def test_rank_r_product_is_the_truncated_svd():
    torch.manual_seed(0)
    linear = nn.Linear(40, 30)
    for rank in (1, 5, 17):
        two = svd_linear(linear, rank)
        first, second = two
        assert first.bias is None and second.bias is not None
        assert first.weight.shape == (rank, 40) and second.weight.shape == (30, rank)
        product = second.weight.double() @ first.weight.double()  # (u, v) = U_t S_t V_t^T
        u, s, vh = torch.linalg.svd(linear.weight.double(), full_matrices=False)
        reference = u[:, :rank] @ torch.diag(s[:rank]) @ vh[:rank]
        torch.testing.assert_close(product, reference, atol=1e-6, rtol=1e-5)
        # Eckart-Young: the Frobenius error is the norm of the dropped singular values.
        error = torch.linalg.norm(linear.weight.double() - product)
        torch.testing.assert_close(error, torch.linalg.norm(s[rank:]), atol=1e-6, rtol=1e-5)
        # The original bias, on the second layer.
        torch.testing.assert_close(second.bias, linear.bias)


def test_full_rank_gives_the_same_outputs():
    torch.manual_seed(1)
    linear = nn.Linear(24, 16)
    x = torch.randn(50, 24)
    torch.testing.assert_close(svd_linear(linear, 16)(x), linear(x), atol=1e-5, rtol=1e-5)


def test_parameter_count_drops_to_t_times_u_plus_v():
    linear = nn.Linear(512, 256)
    two = svd_linear(linear, 32)
    assert count_parameters(two) == 32 * (512 + 256) + 256
    with pytest.raises(ValueError, match=r"rank must be in 1\.\.256"):
        svd_linear(linear, 300)
    with pytest.raises(ValueError, match="rank must be"):
        svd_linear(linear, 0)
    with pytest.raises(TypeError, match="expects an nn.Linear"):
        svd_linear(nn.Conv2d(3, 3, 1), 1)


def test_truncated_svd_on_the_detector():
    ds = ShapesDataset(1)
    props = jittered_proposals(ds)[0]
    model = tiny_model().eval()  # fc6: 32*3*3 = 288 -> 32, fc7: 32 -> 32
    image = ds[0][0]
    compressed = truncated_svd(model, rank_fc6=8, rank_fc7=4)
    # The original is untouched; the copy has two Linear layers in place of each fc layer.
    assert [isinstance(m, nn.Linear) for _, m in model.head.fc.named_children()] == [
        True,
        False,
        True,
        False,
    ]
    fc6, fc7 = [m for m in compressed.head.fc.children() if isinstance(m, nn.Sequential)]
    assert fc6[0].weight.shape == (8, 288) and fc6[1].weight.shape == (32, 8)
    assert fc7[0].weight.shape == (4, 32) and fc7[1].weight.shape == (32, 4)
    saved = (288 * 32 + 32 * 32) - (8 * (288 + 32) + 4 * (32 + 32))
    assert count_parameters(model) - count_parameters(compressed) == saved
    # At full rank the detector's outputs are unchanged.
    full = truncated_svd(model, rank_fc6=32, rank_fc7=32)
    with torch.no_grad():
        features = model.body(image[None])
        a = model.class_outputs(features, [props])
        b = full.class_outputs(features, [props])
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a[1], b[1], atol=1e-5, rtol=1e-4)
    det = compressed.detect_image(image, props, scales=(48,), max_size=64)
    assert set(det) == {"boxes", "labels", "scores"}
    with pytest.raises(ValueError, match="already compressed"):
        truncated_svd(compressed, 4, 4)
