"""`make course`: run every notebook headless on the embedded default and write reports/.

    reports/index.html            the summary page: notebook run times, the comparison table and chart
    reports/summary.md            the same summary as Markdown
    reports/notebooks/*.html      every executed notebook, readable in a browser
    reports/notebooks/*.ipynb     the executed notebooks themselves

The committed notebooks in notebooks/ are not modified (use `make notebooks` for that).
The comparison notebook leaves reports/comparison.json and reports/comparison.png behind;
they are shown on the summary page.
"""

from __future__ import annotations

import html
import json
import os
import sys
import time
import traceback
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import ExecutePreprocessor

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def run_one(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    error = None
    try:
        ExecutePreprocessor(timeout=1800, kernel_name="python3").preprocess(
            nb, {"metadata": {"path": str(path.parent)}}
        )
    except Exception as e:  # keep going: one broken notebook should not hide the others' results
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        traceback.print_exc(limit=1)
    seconds = time.perf_counter() - start
    out = REPORTS / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / path.name)
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out / path.with_suffix(".html").name).write_text(body)
    return {"name": path.stem, "title": title_of(nb, path.stem), "seconds": seconds, "error": error}


def write_summary(results: list[dict]) -> Path:
    comparison = REPORTS / "comparison.json"
    table = json.loads(comparison.read_text()) if comparison.is_file() else None
    md = [
        "# fastrcnn-lite: course run on the embedded dataset",
        "",
        "| notebook | status | run time |",
        "|---|---|---|",
    ]
    rows = []
    for r in results:
        status = "ok" if r["error"] is None else f"FAILED ({r['error']})"
        md.append(
            f"| [{r['title']}](notebooks/{r['name']}.html) | {status} | {r['seconds']:.0f} s |"
        )
        rows.append(
            f"<tr><td><a href='notebooks/{r['name']}.html'>{html.escape(r['title'])}</a></td>"
            f"<td>{html.escape(status)}</td><td>{r['seconds']:.0f} s</td></tr>"
        )
    comp_html = "<p>The comparison notebook did not write reports/comparison.json.</p>"
    if table:
        cols = list(table["rows"][0].keys())
        md += [
            "",
            "## R-CNN vs SPPnet vs Fast R-CNN (this run)",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
        ]
        md += ["| " + " | ".join(str(row[c]) for c in cols) + " |" for row in table["rows"]]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in cols) + "</tr>"
            for row in table["rows"]
        )
        comp_html = (
            f"<h2>R-CNN vs SPPnet vs Fast R-CNN (this run)</h2><table><tr>{head}</tr>{body}</table>"
        )
        if table.get("note"):
            md += ["", table["note"]]
            comp_html += f"<p>{html.escape(table['note'])}</p>"
        if (REPORTS / "comparison.png").is_file():
            md += ["", "![comparison](comparison.png)"]
            comp_html += "<p><img src='comparison.png' style='max-width: 100%'></p>"
    ablations = REPORTS / "ablations.json"
    if ablations.is_file():
        ablation_rows = json.loads(ablations.read_text())["rows"]  # not `rows`: the notebooks'
        cols = list(ablation_rows[0].keys()) if ablation_rows else []
        title = "The paper's ablations, in kind (notebook 07, section 9)"
        md += ["", f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        md += ["| " + " | ".join(str(row[c]) for c in cols) + " |" for row in ablation_rows]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in cols) + "</tr>"
            for row in ablation_rows
        )
        comp_html += f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"
    (REPORTS / "summary.md").write_text("\n".join(md) + "\n")
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.3em .8em;border-bottom:1px solid #ddd}"
    page = (
        f"<!doctype html><meta charset='utf-8'><title>fastrcnn-lite course run</title><style>{style}</style>"
        "<h1>fastrcnn-lite: course run on the embedded dataset</h1>"
        f"<table><tr><th>notebook</th><th>status</th><th>run time</th></tr>{''.join(rows)}</table>{comp_html}"
    )
    index = REPORTS / "index.html"
    index.write_text(page)
    return index


def main() -> int:
    os.environ.setdefault("FASTRCNN_PROFILE", "embedded")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # kernels: idle threads sleep ...
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # ... after spinning ~0.1 ms (conftest.py)
    os.environ["FASTRCNN_REPORTS"] = str(REPORTS)  # the comparison notebook writes its table here
    REPORTS.mkdir(exist_ok=True)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    results = []
    for i, path in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {path.name} ...", flush=True)
        results.append(run_one(path))
        r = results[-1]
        print(
            f"    {'ok' if r['error'] is None else 'FAILED: ' + r['error']} in {r['seconds']:.0f} s",
            flush=True,
        )
    index = write_summary(results)
    failed = [r["name"] for r in results if r["error"]]
    print(
        f"\nExecuted notebooks: {REPORTS / 'notebooks'}\nSummary page:       {index}\nSummary (Markdown): {REPORTS / 'summary.md'}"
    )
    if failed:
        print(f"FAILED notebooks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
