"""The comparison's protocol table (experiments/protocol.py): read from the code, not typed in."""

import inspect

import pytest

from fastrcnn_lite import rcnn, sppnet
from fastrcnn_lite.config import Config
from fastrcnn_lite.experiments.protocol import COLUMNS, format_protocol, protocol_rows
from fastrcnn_lite.rcnn import finetune_iterations as rcnn_iterations
from fastrcnn_lite.regions import resolve_max_proposals
from fastrcnn_lite.sppnet_finetune import finetune_spp_fc


def _row(rows, setting):
    return next(r for r in rows if r["setting"] == setting)


def test_the_rows_follow_the_config():
    cfg = Config.embedded()
    rows = protocol_rows(cfg)
    steps = _row(rows, "fine-tuning SGD iterations x batch")
    assert steps["Fast R-CNN"].startswith(f"{cfg.max_iters} x ")
    assert steps["R-CNN"].startswith(f"{rcnn_iterations(cfg, 'small')} x ")
    longer = _row(protocol_rows(cfg.replace(max_iters=7)), "fine-tuning SGD iterations x batch")
    assert longer["Fast R-CNN"].startswith("7 x ")
    assert _row(rows, "layers fine-tuned")["Fast R-CNN"] == f"from {cfg.trainable_from} up"


def test_embedded_shortcuts_are_named_and_none_favours_fast_rcnn():
    rows = protocol_rows(Config.embedded())
    regions = _row(rows, "regions for features, SVMs, hard negatives")
    # The fair protocol: R-CNN and SPPnet cache and mine every training proposal.
    assert resolve_max_proposals("auto") is None
    assert regions["R-CNN"] == regions["SPPnet"]
    assert regions["R-CNN"].startswith("all proposals")
    assert regions["favours"] == "none"
    proposals = _row(rows, "proposals")
    assert all(proposals[s].startswith("all ") for s in ("R-CNN", "SPPnet", "Fast R-CNN"))
    # The shortcut that remains in SPPnet's fine-tuning is named, with the system it favours.
    windows = _row(rows, "SPPnet's fine-tuning windows")
    background = inspect.signature(finetune_spp_fc).parameters["bg_per_image"].default
    assert f"+ {background} random background per image" in windows["SPPnet"]
    assert windows["favours"].startswith("SPPnet")
    assert _row(rows, "test geometry")["R-CNN"].endswith("warped to 40 x 40")  # 8 x pool 5
    assert not any("Fast R-CNN" in r["favours"] for r in rows)


def test_a_subset_of_proposals_is_still_possible():
    assert resolve_max_proposals(64) == 64
    assert resolve_max_proposals(None) is None
    for bad in (-1, 2.5, "all", True):
        with pytest.raises(ValueError, match="max_proposals_per_image"):
            resolve_max_proposals(bad)


def test_the_paper_profile_has_no_size_shortcut():
    rows = protocol_rows(Config())  # VGG16, the paper's settings
    for setting in ("regions for features, SVMs, hard negatives", "test geometry"):
        assert _row(rows, setting)["favours"] == "none"
    assert _row(rows, "regions for features, SVMs, hard negatives")["R-CNN"].startswith(
        "all proposals"
    )
    assert _row(rows, "test geometry")["R-CNN"].endswith("warped to 224 x 224")


def test_markdown_has_a_header_and_one_line_per_row():
    rows = protocol_rows(Config.embedded())
    lines = format_protocol(rows).splitlines()
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |"
    assert len(lines) == len(rows) + 2
    assert all(line.count("|") == len(COLUMNS) + 1 for line in lines)


@pytest.mark.parametrize(
    "module, load", [(rcnn, "load_or_train_rcnn"), (sppnet, "load_or_train_sppnet")]
)
def test_the_model_cache_is_keyed_by_the_proposals_actually_used(monkeypatch, module, load):
    # "auto" now means all proposals: it must share the key of None (all) and never reuse a
    # model trained on a subset (the cache key is built from the kwargs passed on).
    seen = []
    monkeypatch.setattr(module, "load_or_train", lambda *args, **kwargs: seen.append(kwargs))
    for value in ("auto", None, 64):
        getattr(module, load)(Config.embedded(), None, [], max_proposals_per_image=value)
    assert [k["max_proposals_per_image"] for k in seen] == [None, None, 64]
