"""The embedded dataset's images: synthetic shapes drawn from a seed, with their boxes.

Data-flow stage: **image** (the source the VOC reader reads). The course trains and evaluates
every system on the embedded dataset when PASCAL VOC 2007 (the paper's section 4 benchmark) is
absent, on CPU, in minutes. This module draws one image and its objects
(:func:`render_image`: an ``ndarray[H, W, 3]`` uint8 and one dict per object, with its VOC box);
``embedded_files.py`` writes them as a genuine VOCdevkit tree (JPEG, XML, ImageSets, manifest),
so they go through the very same reader (:class:`fastrcnn_lite.voc.VOCDataset`), proposals,
training and evaluation code; ``embedded_cli.py`` is the command
``python -m fastrcnn_lite.embedded --root data/embedded``.

What an image holds (every choice below is drawn from a numpy ``Generator`` seeded by
``(seed, split, index)``, so an image does not depend on the order of generation and the same
seed writes byte-identical files):

- Size: width and height each between 160 and 224 px (aspect ratios vary).
- Background: a two-colour gradient with blotchy low-contrast noise, plus clutter that is *not*
  one of the classes: thin straight lines, open arcs, zig-zags and small irregular blobs. A few
  thin lines may also cross over the objects.
- 1 to 5 objects from :data:`CLASSES`. The **shape defines the class**; colour and texture are
  drawn independently of it: solid, stripes, checker, noise or gradient fill in random colours
  (kept apart from the background colour so an object is visible), sometimes with an outline.
  Each shape is stretched (aspect 0.55-1.8), rotated (up to 25 degrees) and sized 18-100 px
  (``sqrt(w * h)``, log-uniform); about 8% are tiny (10-15 px).
- Occlusion: objects are drawn in order and a later object hides an earlier one (the hole of a
  ``ring`` shows what lies below). A placement is rejected and redrawn if it would leave any
  object less than half visible (occlusion and the image border together), so every drawn
  object is annotated; ``<occluded>1`` (a VOC 2010+ tag the reader ignores) marks objects
  that something covers, ``<truncated>1`` objects cut by the border.
- Boxes are tight around each object's *visible* pixels (computed from the drawn mask).
  Objects whose visible box is smaller than 16 px (``sqrt(w * h)``) are marked
  ``<difficult>1``: the tiny ones and a few heavily covered ones. As in VOC, difficult objects
  count neither as hits nor misses in evaluation.

How hard it is (seed 0, 400 + 200 images): ~3 objects per image, 7% difficult, 22% partly
covered, 10% truncated. A small CNN trained from scratch on 32 x 32 crops of the trainval boxes
names ~88% of the test crops right; a classifier on an object's mean colour ~18% (chance 17%).
Selective search (fast mode) finds 99% of the boxes at IoU 0.5 with ~180 proposals per image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "SPLITS",
    "MAX_IMAGES_PER_SPLIT",
    "render_image",
    "image_id",
]

# The classes in label order (label i + 1 is CLASSES[i], 0 is background). The shape alone
# decides the class; "circle" and "square" are stretched into ellipses and rectangles.
CLASSES = ("circle", "square", "triangle", "star", "ring", "cross")

# Bump when a change to the drawing code changes the files: ensure_embedded then regenerates.
GENERATOR_VERSION = 2  # 1 was a pre-release draft (different drawing)

SPLITS = ("trainval", "test")
_SPLIT_CODE = {"trainval": 0, "test": 1}  # part of each image's seed
_ID_OFFSET = {"trainval": 0, "test": 100_000}  # trainval ids 000001.., test ids 100001..
MAX_IMAGES_PER_SPLIT = 99_999

IMAGE_SIDE = (160, 224)  # width and height are each drawn from this range (px)
OBJECT_SIZE = (18.0, 100.0)  # sqrt(w * h) of a normal object, log-uniform (px)
TINY_SIZE = (10.0, 15.0)  # sqrt(w * h) of a tiny object (px)
TINY_PROB = 0.08  # fraction of objects drawn tiny
ASPECT = (0.55, 1.8)  # w / h stretch of an object, log-uniform
OBJECTS_PER_IMAGE = (1, 2, 3, 4, 5)
OBJECTS_PROB = (0.15, 0.25, 0.25, 0.2, 0.15)
MIN_VISIBLE = 0.5  # every object keeps at least this fraction of its area visible
DIFFICULT_SIZE = 16.0  # visible box smaller than this (sqrt(w * h), px) -> difficult
TEXTURES = ("solid", "stripes", "checker", "noise", "gradient")


# --- shapes ---------------------------------------------------------------------------------


def _regular(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.sin(t), -radius * np.cos(t)], 1)  # (n, 2), first point up


def _shape_outlines(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Outlines of one shape in unit coordinates (within [-1, 1]^2, centred).

    Returns a list of (n, 2) polygons; the first is the outside, any further one is a hole.
    """
    if name == "circle":
        return [_regular(64)]
    if name == "square":
        return [np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)]
    if name == "triangle":
        apex = rng.uniform(-0.6, 0.6)  # isosceles to scalene
        return [np.array([[apex, -1], [1, 1], [-1, 1]], dtype=np.float64)]
    if name == "star":
        inner = rng.uniform(0.38, 0.5)
        points = rng.choice([5, 6])
        outer, hollow = _regular(points), _regular(points, inner, np.pi / points)
        return [np.stack([outer, hollow], 1).reshape(-1, 2)]  # alternate tips and notches
    if name == "ring":
        return [_regular(64), _regular(64, rng.uniform(0.45, 0.65))]
    if name == "cross":
        a = rng.uniform(0.28, 0.42)  # half the arm thickness
        return [
            np.array(
                [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a],
                 [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]],
                dtype=np.float64,
            )
        ]  # fmt: skip
    raise ValueError(f"Unknown shape {name!r}; expected one of {CLASSES}.")


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _fill_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise outlines (continuous pixels) to an (H, W) bool mask; polygons after the first are holes.

    A pixel belongs to the shape when at least half of it is covered, measured on a 4 x 4
    sub-pixel grid (cv2 fills with 1/16 sub-pixel vertex precision, pixel centres on integers).
    """
    mask = np.zeros((height, width), bool)
    points = np.concatenate(polygons)
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int), [width, height])
    if x1 <= x0 or y1 <= y0:
        return mask  # entirely outside the image
    ss, shift = 4, 4
    fine = np.zeros(((y1 - y0) * ss, (x1 - x0) * ss), np.uint8)  # the region, 4x finer
    for k, poly in enumerate(polygons):
        pts = np.round(((poly - [x0, y0]) * ss - 0.5) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(fine, [pts], 0 if k else 1, lineType=cv2.LINE_8, shift=shift)
    coverage = fine.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))  # (y1-y0, x1-x0) in [0, 1]
    mask[y0:y1, x0:x1] = coverage >= 0.5
    return mask


# --- colours and textures -------------------------------------------------------------------


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour (0-255 floats) from a random hue, saturation and value."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.0, 1.0) ** 0.7, rng.uniform(0.2, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    rgb = v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)
    return 255 * rgb


def _texture(kind: str, c1: np.ndarray, c2: np.ndarray, grid: tuple, rng) -> np.ndarray:
    """A (rows, cols, 3) float image of one fill pattern in colours c1 and c2.

    ``grid`` = (yy, xx), each (rows, cols): the pixel-centre coordinates of the region to fill.
    """
    yy, xx = grid
    if kind == "solid":
        return np.broadcast_to(c1, (*yy.shape, 3))
    if kind == "stripes":
        t = rng.uniform(0, np.pi)
        period = rng.uniform(3.0, 9.0)
        w = ((xx * np.cos(t) + yy * np.sin(t)) / period) % 1.0 < 0.5
    elif kind == "checker":
        cell = rng.uniform(3.0, 8.0)
        w = (np.floor(xx / cell) + np.floor(yy / cell)) % 2 == 0
    elif kind == "noise":
        noise = rng.normal(0.0, 1.0, yy.shape).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), rng.uniform(0.6, 2.0))
        w = np.clip(0.5 + noise / (2.5 * noise.std() + 1e-6), 0, 1)
    elif kind == "gradient":
        t = rng.uniform(0, 2 * np.pi)
        d = xx * np.cos(t) + yy * np.sin(t)
        cx, cy = rng.uniform(xx[0, 0], xx[0, -1] + 1), rng.uniform(yy[0, 0], yy[-1, 0] + 1)
        span = rng.uniform(20, 80)
        w = np.clip(0.5 + (d - (cx * np.cos(t) + cy * np.sin(t))) / span, 0, 1)
    else:
        raise ValueError(f"Unknown texture {kind!r}; expected one of {TEXTURES}.")
    w = w.astype(np.float32)[..., None]
    return w * c1 + (1 - w) * c2


def _background(height: int, width: int, grid: tuple, rng) -> np.ndarray:
    """A two-colour gradient with blotchy, low-contrast noise: (H, W, 3) float."""
    c1, c2 = _random_colour(rng), _random_colour(rng)
    c2 = c1 + rng.uniform(0.2, 0.7) * (c2 - c1)  # a gentle gradient
    image = _texture("gradient", c1, c2, grid, rng).copy()
    blotch = rng.normal(0.0, 1.0, (height // 8 + 2, width // 8 + 2)).astype(np.float32)
    blotch = cv2.resize(blotch, (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.uniform(5, 25) * blotch[..., None]
    return image


# --- clutter: strokes and blobs that are not one of the classes ------------------------------


def _draw_clutter(image: np.ndarray, rng, count: int, over: bool = False) -> np.ndarray:
    """Draw ``count`` distractors into ``image`` (in place); returns their (H, W) bool mask."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for _ in range(count):
        kind = (
            "line"
            if over
            else rng.choice(["line", "arc", "zigzag", "blob"], p=[0.3, 0.25, 0.2, 0.25])
        )
        layer = np.zeros((height, width), np.uint8)
        thickness = int(rng.integers(1, 3 if over else 4))
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if kind == "line":
            length, t = rng.uniform(20, 120), rng.uniform(0, np.pi)
            p = np.array([[x, y], [x + length * np.cos(t), y + length * np.sin(t)]])
            cv2.polylines(layer, [np.round(p).astype(np.int32)], False, 1, thickness)
        elif kind == "arc":
            axes = (int(rng.integers(8, 40)), int(rng.integers(8, 40)))
            start = float(rng.uniform(0, 360))
            span = float(rng.uniform(40, 150))  # open: never a full ring
            cv2.ellipse(
                layer,
                (int(x), int(y)),
                axes,
                float(rng.uniform(0, 180)),
                start,
                start + span,
                1,
                thickness,
            )
        elif kind == "zigzag":
            n = int(rng.integers(3, 7))
            step, t = rng.uniform(6, 16), rng.uniform(0, 2 * np.pi)
            along = np.arange(n) * step
            side = np.where(np.arange(n) % 2 == 0, -1, 1) * rng.uniform(3, 8)
            p = np.stack(
                [
                    x + along * np.cos(t) - side * np.sin(t),
                    y + along * np.sin(t) + side * np.cos(t),
                ],
                1,
            )
            cv2.polylines(layer, [np.round(p).astype(np.int32)], False, 1, thickness)
        else:  # blob: a small irregular lump with several random harmonics
            radius = rng.uniform(2.5, 8.0)
            t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
            r = np.ones_like(t)
            for harmonic in range(2, 6):
                r += rng.uniform(0.08, 0.22) * np.cos(harmonic * t + rng.uniform(0, 2 * np.pi))
            p = np.stack([x + radius * r * np.cos(t), y + radius * r * np.sin(t)], 1)
            layer = _fill_mask([p], height, width).astype(np.uint8)
        colour = _random_colour(rng)
        image[layer.astype(bool)] = colour
        mask |= layer
    return mask.astype(bool)


# --- one image ------------------------------------------------------------------------------


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator for one image: depends on (seed, split, index) only."""
    return np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODE[split], index]))


def image_id(split: str, index: int) -> str:
    """The VOC id of image ``index`` (0-based) of ``split``: trainval 000001.., test 100001..

    No notebook: ``embedded_files.generate`` names the files with it.
    """
    return f"{_ID_OFFSET[split] + index + 1:06d}"


def _sample_object(rng, width: int, height: int) -> dict:
    """Class, outline (continuous pixels) and fill of one object; placement is random."""
    name = CLASSES[int(rng.integers(len(CLASSES)))]
    if rng.uniform() < TINY_PROB:
        size = rng.uniform(*TINY_SIZE)
    else:
        top = min(OBJECT_SIZE[1], 0.6 * min(width, height))
        size = math.exp(rng.uniform(math.log(OBJECT_SIZE[0]), math.log(top)))
    aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
    w, h = size * math.sqrt(aspect), size / math.sqrt(aspect)
    angle = rng.uniform(-25, 25) * np.pi / 180
    # Most objects lie fully inside the image; some may be cut by the border.
    margin = 0.0 if rng.uniform() < 0.8 else 0.5
    cx = rng.uniform(w / 2 * (1 - margin), width - w / 2 * (1 - margin)) if w < width else width / 2
    cy = (
        rng.uniform(h / 2 * (1 - margin), height - h / 2 * (1 - margin))
        if h < height
        else height / 2
    )
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    outlines = [
        (unit * [w / 2, h / 2]) @ rot.T + [cx, cy] for unit in _shape_outlines(name, rng)
    ]  # each (n, 2) continuous pixels
    area = _polygon_area(outlines[0]) - sum(_polygon_area(p) for p in outlines[1:])
    return {
        "name": name,
        "outlines": outlines,
        "area": area,
        "texture": str(rng.choice(TEXTURES)),
        "outline_px": int(rng.choice([0, 0, 0, 1, 2])),
    }


def _fill_colours(references: list[np.ndarray], rng) -> tuple:
    """Two fill colours whose mean stands out from every colour in ``references``."""
    for _ in range(20):
        c1, c2 = _random_colour(rng), _random_colour(rng)
        mean = (c1 + c2) / 2
        if np.linalg.norm(c1 - c2) > 40 and all(np.linalg.norm(mean - r) > 70 for r in references):
            break
    return c1, c2


def render_image(seed: int, split: str, index: int) -> tuple[np.ndarray, list[dict]]:
    """Draw image ``index`` of ``split``, exactly as ``embedded_files.generate`` writes it
    (before JPEG).

    No notebook: ``embedded_files.generate``, the detector benchmark
    (``experiments/bench_detectors.py``) and the tests draw images with it.

    Returns:
        image (ndarray[H, W, 3] uint8) and one dict per annotated object, in drawing order:
        ``name``, ``box`` (VOC 1-based inclusive ints xmin, ymin, xmax, ymax), ``difficult``,
        ``truncated``, ``occluded`` (bools), ``visible`` (fraction of the shape's area
        visible), ``texture`` (its fill pattern), ``mask`` (ndarray[H, W] bool: its visible
        pixels), ``outlines`` (list of (n, 2) polygons in continuous pixels; the first is the
        outside, any other a hole).
    """
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    rng = _image_rng(seed, split, index)
    width, height = (int(v) for v in rng.integers(IMAGE_SIDE[0], IMAGE_SIDE[1] + 1, size=2))
    grid = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5  # (2, H, W) pixel centres
    image = _background(height, width, grid, rng)
    _draw_clutter(image, rng, int(rng.integers(3, 12)))

    # Place objects one by one; reject a placement that hides too much of anything.
    wanted = int(rng.choice(OBJECTS_PER_IMAGE, p=OBJECTS_PROB))
    objects: list[dict] = []
    for _ in range(wanted):
        for _attempt in range(30):
            obj = _sample_object(rng, width, height)
            full = _fill_mask(obj["outlines"], height, width)
            if full.sum() < MIN_VISIBLE * obj["area"]:
                continue
            if any((o["mask"] & ~full).sum() < MIN_VISIBLE * o["area"] for o in objects):
                continue
            for o in objects:
                o["mask"] = o["mask"] & ~full
            obj["mask"], obj["full_in_image"] = full, full.copy()
            objects.append(obj)
            break

    # Draw them in order: fill texture, then an optional outline along the mask's edge.
    # The fill must stand out from the background and from every earlier object it overlaps.
    covered = np.zeros((height, width), bool)
    for k, obj in enumerate(objects):
        full = obj["full_in_image"]
        references = [o["fill_mean"] for o in objects[:k] if (o["full_in_image"] & full).any()]
        if (full & ~covered).any():
            references.append(image[full & ~covered].mean(0))
        c1, c2 = _fill_colours(references, rng)
        ys, xs = np.nonzero(full)
        crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))  # the mask's extent
        # the fill of the mask's extent: (rows, cols, 3)
        fill = _texture(obj["texture"], c1, c2, (grid[0][crop], grid[1][crop]), rng)
        inside = full[crop]
        image[crop][inside] = fill[inside]
        obj["fill_mean"] = fill[inside].mean(0)
        covered |= full
        if obj["outline_px"]:
            kernel = np.ones((2 * obj["outline_px"] + 1,) * 2, np.uint8)
            edge = full & ~cv2.erode(full.astype(np.uint8), kernel).astype(bool)
            image[edge] = _random_colour(rng) * 0.5

    # A few thin lines over everything, then sensor noise.
    if rng.uniform() < 0.3:
        over = _draw_clutter(image, rng, int(rng.integers(1, 3)), over=True)
        for obj in objects:
            obj["mask"] = obj["mask"] & ~over
    image += rng.normal(0.0, rng.uniform(1.0, 6.0), image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    annotated = []
    for obj in objects:
        mask = obj["mask"]
        if not mask.any():  # cannot happen with MIN_VISIBLE > 0, kept as a guard
            continue
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)
        visible_size = math.sqrt((box[2] - box[0] + 1) * (box[3] - box[1] + 1))
        outer = obj["outlines"][0]
        outside = (outer < 0).any(1) | (outer[:, 0] > width) | (outer[:, 1] > height)
        annotated.append(
            {
                "name": obj["name"],
                "box": box,
                "difficult": visible_size < DIFFICULT_SIZE,
                "truncated": bool(outside.any()),
                "occluded": bool((obj["full_in_image"] & ~mask).any()),
                "visible": float(mask.sum() / obj["area"]),
                "texture": obj["texture"],
                "mask": mask,
                "outlines": obj["outlines"],
            }
        )
    return image, annotated


if __name__ == "__main__":
    from fastrcnn_lite.cli import run
    from fastrcnn_lite.embedded_cli import main

    run(main)
