"""Profiling (fastrcnn_lite.experiments.profiling): every stage timed, shares summing to 1, the chart drawn."""

import math

import pytest
import torch

from fastrcnn_lite.experiments.profiling import (
    TEST_STAGES,
    TRAIN_STAGES,
    format_profile,
    plot_profile,
    profile_fast_rcnn,
)

from .test_fast_rcnn import ShapesDataset, jittered_proposals, tiny_cfg, tiny_model


def test_profile_has_every_stage_and_shares_sum_to_one():
    ds = ShapesDataset(4)
    props = jittered_proposals(ds)
    cfg = tiny_cfg()
    model = tiny_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    profile = profile_fast_rcnn(cfg, ds, props, model=model, repeats=2)
    for part, stages in (("train", TRAIN_STAGES), ("test", TEST_STAGES)):
        p = profile[part]
        assert tuple(p["seconds"]) == stages and tuple(p["shares"]) == stages
        assert all(p["seconds"][s] > 0 for s in stages), p["seconds"]
        assert math.isclose(sum(p["shares"].values()), 1.0, rel_tol=1e-9)
        assert math.isclose(sum(p["seconds"].values()), p["total"], rel_tol=1e-9)
        assert p["runs"] == 2
    # the model passed in is left as it was (a copy is trained)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model._forward_hooks and not model.body._forward_pre_hooks
    text = format_profile(profile)
    assert "training iteration" in text and "post-processing" in text
    fig = plot_profile(profile)
    assert len(fig.axes[0].patches) == len(TRAIN_STAGES) + len(TEST_STAGES)


def test_profile_errors():
    ds = ShapesDataset(2)
    props = jittered_proposals(ds)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        profile_fast_rcnn(tiny_cfg(), ds, props, repeats=0)
    with pytest.raises(ValueError, match=r"one proposal tensor per train image: 2 images, 1"):
        profile_fast_rcnn(tiny_cfg(), ds, props[:1], model=tiny_model())
