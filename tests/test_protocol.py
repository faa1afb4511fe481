"""The comparison's protocol table (experiments/protocol.py): read from the code, not typed in."""

from fastrcnn_lite.config import Config
from fastrcnn_lite.experiments.protocol import COLUMNS, format_protocol, protocol_rows
from fastrcnn_lite.rcnn import finetune_iterations as rcnn_iterations
from fastrcnn_lite.regions import resolve_max_proposals


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
    cap = resolve_max_proposals("auto", "small")
    regions = _row(rows, "regions for features, SVMs, hard negatives")
    assert regions["R-CNN"].startswith(f"{cap} random per image")
    assert "R-CNN" in regions["favours"]
    assert _row(rows, "test geometry")["R-CNN"].endswith("warped to 40 x 40")  # 8 x pool 5
    assert not any("Fast R-CNN" in r["favours"] for r in rows)


def test_the_paper_profile_has_no_size_shortcut():
    rows = protocol_rows(Config())  # VGG16, the paper's settings
    for setting in ("regions for features, SVMs, hard negatives", "test geometry"):
        assert _row(rows, setting)["favours"] == "none"
    assert _row(rows, "regions for features, SVMs, hard negatives")["R-CNN"] == "all of them"
    assert _row(rows, "test geometry")["R-CNN"].endswith("warped to 224 x 224")


def test_markdown_has_a_header_and_one_line_per_row():
    rows = protocol_rows(Config.embedded())
    lines = format_protocol(rows).splitlines()
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |"
    assert len(lines) == len(rows) + 2
    assert all(line.count("|") == len(COLUMNS) + 1 for line in lines)
