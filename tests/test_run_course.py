"""tools/run_course.py's summary page: the notebooks' run times, the comparison and the ablations."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(reports: Path):
    spec = importlib.util.spec_from_file_location("run_course", ROOT / "tools" / "run_course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.REPORTS = reports
    return module


def test_summary_page_lists_notebooks_comparison_and_ablations(tmp_path):
    tool = _tool(tmp_path)
    comparison = {"rows": [{"system": "Fast R-CNN", "mAP": "0.665"}], "note": "a note"}
    (tmp_path / "comparison.json").write_text(json.dumps(comparison))
    ablations = {"rows": [{"experiment": "SVD vs none", "verdict": "within noise"}]}
    (tmp_path / "ablations.json").write_text(json.dumps(ablations))
    results = [
        {"name": "00_data", "title": "00 data", "error": None, "seconds": 9.4},
        {"name": "07_comparison", "title": "07 <comparison>", "error": "boom", "seconds": 141.0},
    ]
    page = tool.write_summary(results).read_text()
    for text in ("00 data", "9 s", "07 &lt;comparison&gt;", "FAILED (boom)", "141 s"):
        assert text in page
    assert page.index("00 data") < page.index("Fast R-CNN") < page.index("SVD vs none")
    summary = (tmp_path / "summary.md").read_text()
    assert "| [00 data](notebooks/00_data.html) | ok | 9 s |" in summary
    assert "| SVD vs none | within noise |" in summary
