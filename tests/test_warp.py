"""R-CNN's warp (fastrcnn_lite.warp) against a slow per-box crop + resize reference."""

import pytest
import torch
import torch.nn.functional as F

from fastrcnn_lite.warp import context_boxes, warp_regions


def crop_resize_reference(image, boxes, size, context, fill, margin=64):
    """One box at a time: dilate, pad the image with ``fill``, crop integer pixels, bilinear resize.

    Only valid when every dilated box has integer corners and is at least ``size`` pixels wide
    and high (downsampling), so the resize never reads outside the crop.
    """
    padded = (
        F.pad(image - fill[:, None, None], (margin,) * 4) + fill[:, None, None]
    )  # (3, H + 2m, W + 2m)
    out = []
    for box in boxes.tolist():
        w, h = box[2] - box[0], box[3] - box[1]
        px, py = context * w / (size - 2 * context), context * h / (size - 2 * context)
        x1, y1, x2, y2 = (
            box[0] - px + margin,
            box[1] - py + margin,
            box[2] + px + margin,
            box[3] + py + margin,
        )
        assert all(abs(v - round(v)) < 1e-6 for v in (x1, y1, x2, y2)), (
            "reference needs integer corners"
        )
        assert x2 - x1 >= size and y2 - y1 >= size, "reference needs downsampling"
        crop = padded[:, round(y1) : round(y2), round(x1) : round(x2)]
        out.append(
            F.interpolate(
                crop[None], size=(size, size), mode="bilinear", align_corners=False, antialias=False
            )[0]
        )
    return torch.stack(out)


def test_warp_matches_crop_and_resize_inside_the_image():
    image = torch.rand(3, 60, 80, generator=torch.Generator().manual_seed(0))
    # size 8, context 1: the box fills the central 6 pixels, so each side grows by w/6, h/6.
    boxes = torch.tensor(
        [[12.0, 12.0, 24.0, 30.0], [30.0, 6.0, 66.0, 42.0], [6.0, 18.0, 54.0, 54.0]]
    )
    fill = image.mean(dim=(1, 2))
    got = warp_regions(image, boxes, size=8, context=1)
    want = crop_resize_reference(image, boxes, 8, 1, fill)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_warp_pads_with_the_fill_value_outside_the_image():
    image = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(1))
    # Dilated boxes reach past every border: (-6, -6, 18, 18), (30, 24, 54, 48) with size 12, context 2.
    boxes = torch.tensor([[-2.0, -2.0, 14.0, 14.0], [34.0, 28.0, 50.0, 44.0]])
    fill = torch.tensor([0.2, 0.5, 0.9])
    got = warp_regions(image, boxes, size=12, context=2, fill=fill)
    want = crop_resize_reference(image, boxes, 12, 2, fill)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # And the default fill is the image's per-channel mean.
    torch.testing.assert_close(
        warp_regions(image, boxes, 12, 2),
        crop_resize_reference(image, boxes, 12, 2, image.mean(dim=(1, 2))),
        atol=1e-5,
        rtol=0,
    )


def test_context_leaves_exactly_context_pixels_around_the_box():
    image = torch.zeros(3, 100, 100)
    image[:, 30:54, 40:64] = 1.0  # a 24 x 24 white box at (40, 30, 64, 54)
    out = warp_regions(
        image, torch.tensor([[40.0, 30.0, 64.0, 54.0]]), size=20, context=4, fill=0.0
    )[0]
    inside = torch.zeros(20, 20, dtype=torch.bool)
    inside[4:16, 4:16] = True
    assert (out[:, inside] == 1).all() and (out[:, ~inside] == 0).all()
    torch.testing.assert_close(
        context_boxes(torch.tensor([[40.0, 30.0, 64.0, 54.0]]), 20, 4),
        torch.tensor([[32.0, 22.0, 72.0, 62.0]]),
    )


def test_anisotropic_and_context_zero():
    # context 0 warps the tight box; a 2:1 box is squeezed, not padded (R-CNN's "warp", not "tightest square").
    image = torch.arange(16 * 32, dtype=torch.float32).reshape(1, 16, 32).repeat(3, 1, 1)
    out = warp_regions(image, torch.tensor([[0.0, 0.0, 32.0, 16.0]]), size=16, context=0)
    want = F.interpolate(image[None], size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, want)


def test_vectorised_equals_one_box_at_a_time():
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(3, 50, 70, generator=gen)
    xy = torch.rand(20, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 2 + torch.rand(20, 2, generator=gen) * 30], dim=1)
    together = warp_regions(image, boxes, 16, 3)
    one_by_one = torch.cat([warp_regions(image, b[None], 16, 3) for b in boxes])
    torch.testing.assert_close(together, one_by_one)
    assert together.shape == (20, 3, 16, 16)


def test_no_boxes_gives_an_empty_batch():
    out = warp_regions(torch.rand(3, 20, 20), torch.zeros(0, 4), 8, 1)
    assert out.shape == (0, 3, 8, 8)


def test_errors():
    with pytest.raises(ValueError, match=r"Tensor\[3, H, W\]"):
        warp_regions(torch.rand(1, 3, 20, 20), torch.zeros(1, 4), 8, 1)
    with pytest.raises(ValueError, match="RoI tensor"):
        warp_regions(torch.rand(3, 20, 20), torch.zeros(1, 5), 8, 1)
    with pytest.raises(ValueError, match="2 \\* context < size"):
        warp_regions(torch.rand(3, 20, 20), torch.tensor([[0.0, 0.0, 5.0, 5.0]]), 8, 4)
    with pytest.raises(TypeError, match="float"):
        warp_regions(
            torch.zeros(3, 20, 20, dtype=torch.uint8), torch.tensor([[0.0, 0.0, 5.0, 5.0]]), 8, 1
        )
