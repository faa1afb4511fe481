"""The course as learners meet it: JupyterLab in headless chromium, driven by pytest-playwright.

What nbval cannot see is checked here in a real browser against a real `jupyter lab` server
(127.0.0.1, a random free port, a token, every Jupyter folder isolated in a temporary directory,
stopped afterwards):

- notebooks 00 and 04 (copies) run all their cells; every slider and dropdown of the IoU widget
  and the two RoI pooling widgets is moved, and the drawing and the printed output change and
  agree with the package (``box_iou``, ``roi_pool``, ``roi_pool_view``) on the same inputs;
- at 1024 x 768 with the file browser open every slider track is at least 120 px wide, no label
  is cut, no control or figure sticks out of the notebook panel, and figures are not shrunk;
- a saved notebook opened without running shows each widget's picture and each progress bar's
  final line (no widget text repr), and the live widget once its cell runs;
- the ``make course`` summary page: every notebook link, the comparison table and the chart load.

Screenshots of the widgets at 1024 and 1920 px (trimmed, 64 colours) go to a temporary folder,
or to the folder named by ``FASTRCNN_SCREENSHOTS`` (``make screenshots`` writes the README's, in
assets/).

Needs Debian's chromium (``apt-get install chromium``; ``.ci/run`` installs it): no browser is
downloaded. Without it every test here is skipped, saying so.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image, ImageChops

pytest.importorskip("playwright", reason="the browser tests need playwright (tests extra)")
pytest.importorskip("pytest_playwright", reason="the browser tests need pytest-playwright")

from fastrcnn_lite.roi_pool import roi_pool  # noqa: E402
from fastrcnn_lite.teaching.roi_views import (  # noqa: E402
    IMAGE_SIZE,
    demo_feature_map,
    feature_size,
    roi_pool_view,
)

# pytest-playwright's own base_url fixture trips a pytest deprecation warning; not ours to fix
pytestmark = pytest.mark.filterwarnings(
    "ignore:Session-scoped fixtures defined as instance methods"
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MIN_TRACK_PX = 120  # a slider track this wide gives every one-cell step a few pixels
LAPTOP = {"width": 1024, "height": 768}
DESKTOP = {"width": 1920, "height": 1080}
TIMEOUT_MS = 60_000  # Run All and widget updates on two busy cores


def _chromium() -> str | None:
    for path in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if path and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's chromium, headless; nothing is downloaded."""
    path = _chromium()
    if path is None:
        pytest.skip(
            "no chromium at /usr/bin/chromium (or $CHROMIUM): install Debian's chromium "
            "(apt-get install chromium chromium-driver) to run the browser tests"
        )
    return {
        **browser_type_launch_args,
        "executable_path": path,
        "headless": True,
        "args": CHROMIUM_FLAGS,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": LAPTOP}


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get("FASTRCNN_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- the lab server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


class Lab:
    def __init__(self, url: str, token: str, root: Path):
        self.url, self.token, self.root = url, token, root

    def open(self, page, name: str) -> None:
        """Open ``name`` (relative to the lab root) and wait for its kernel to be idle."""
        page.goto(f"{self.url}/lab/tree/{name}?token={self.token}&reset")
        # the kernel is idle: the status bar says so (the toolbar's indicator may sit hidden in
        # the toolbar's overflow menu at 1024 px, so it only has to be in the page)
        page.locator("#jp-main-statusbar", has_text=re.compile(r"\|\s*Idle")).wait_for(
            timeout=TIMEOUT_MS
        )
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            state="attached", timeout=TIMEOUT_MS
        )
        if not page.locator("#filebrowser").is_visible():  # the learner's layout: sidebar open
            page.locator(".jp-SideBar [data-id='filebrowser']").click()
        page.locator("#filebrowser").wait_for(state="visible")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`jupyter lab` on 127.0.0.1 with its own config, runtime, data, settings and workspaces."""
    if _chromium() is None:
        pytest.skip("no chromium: install Debian's chromium to run the browser tests")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    for name in ("00_data_and_boxes.ipynb", "04_roi_pooling.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, root / name)
    home = tmp / "home"  # FASTRCNN_HOME: data/ and data/cache/ here, never in the repository
    embedded = ROOT / "data" / "embedded"
    if embedded.is_dir():  # a copy (10 MB); without one the notebook generates it here (~7 s)
        shutil.copytree(embedded, home / "data" / "embedded")
    settings = tmp / "settings"
    _write_json(
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    _write_json(  # every cell in the page, so every output can be found and measured
        settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
        {"windowingMode": "none"},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MPLBACKEND"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_DATA_DIR=str(tmp / "data"),  # its own notary: saved notebooks are untrusted
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        FASTRCNN_HOME=str(home),  # config.project_dir(): data/embedded and data/cache
        FASTRCNN_PROFILE="embedded",
        FASTRCNN_REPORTS=str(tmp / "reports"),
        OMP_WAIT_POLICY="PASSIVE",
        GOMP_SPINCOUNT="10000",
    )
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "jupyter lab did not start:\n" + (tmp / "lab.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.5)
        yield Lab(url, token, root)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


# ----------------------------------------------------------------------------- page helpers


def menu(page, name: str, item: str) -> None:
    """Click menu ``name`` of the menu bar, then its item matching the regular expression ``item``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{name}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


def run_all(page) -> None:
    """Edit > Clear Outputs of All Cells, Run > Run All Cells, then wait until every cell ran."""
    menu(page, "Edit", "Clear Outputs of All Cells")
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(  # every cell ran, or one failed and Run All stopped there
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            const queued = prompts.some(p => p.textContent.includes('*'));
            const failed = [...document.querySelectorAll('.jp-OutputArea-output')].some(
                o => /Traceback|Error/.test(o.textContent) &&
                     o.matches('[data-mime-type="application/vnd.jupyter.stderr"]'));
            const done = prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            return done || (failed && !queued);
        }""",
        timeout=TIMEOUT_MS * 3,
    )
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert not tracebacks, tracebacks[0][:2000]


def widget_output(page, label: str):
    """The output area holding the widget that has a control labelled ``label``."""
    exact = re.compile(f"^{re.escape(label)}$")
    out = page.locator(".jp-OutputArea-output").filter(
        has=page.locator(".widget-label", has_text=exact)
    )
    out.wait_for(timeout=TIMEOUT_MS)
    return out


def slider(widget, label: str):
    exact = re.compile(f"^{re.escape(label)}$")
    return widget.locator(".widget-slider").filter(
        has=widget.page.locator(".widget-label", has_text=exact)
    )


def slider_value(widget, label: str) -> int:
    return int(slider(widget, label).locator(".widget-readout").inner_text())


def readout(widget) -> str:
    return widget.locator("pre.frl-readout").inner_text()


def wait_for_new_readout(widget, action) -> None:
    """Do ``action`` and wait until the widget's printed output changes."""
    box = widget.locator(".widget-html-content:has(pre.frl-readout)")  # kept; its <pre> is not
    old = box.evaluate("el => el.textContent")
    action()
    widget.page.wait_for_function(
        "([el, old]) => el.textContent !== old",
        arg=[box.element_handle(), old],
        timeout=TIMEOUT_MS,
    )


def picture_sources(widget) -> list[str]:
    return [img.get_attribute("src") for img in widget.locator("img.widget-image").all()]


def press(widget, label: str, key: str = "ArrowRight") -> tuple[int, int]:
    """Press ``key`` on a slider's knob; wait until the widget's printed output changes.

    Returns (value before, value after).
    """
    knob = slider(widget, label).locator(".noUi-handle")
    before, pictures = slider_value(widget, label), picture_sources(widget)
    if key == "ArrowRight" and before == int(float(knob.get_attribute("aria-valuemax"))):
        key = "ArrowLeft"  # at the end of the track: step back instead
    wait_for_new_readout(widget, lambda: knob.press(key))
    assert picture_sources(widget) != pictures, f"moving {label} did not redraw the figure"
    return before, slider_value(widget, label)


def check_layout(page, widget, name: str) -> None:
    """Every track wide enough, no label cut, nothing outside the notebook panel, figures unshrunk."""
    panel = page.locator(".jp-NotebookPanel-notebook:visible").bounding_box()
    left, right = panel["x"], panel["x"] + panel["width"]
    for control in widget.locator(".widget-slider, .widget-dropdown").all():
        box = control.bounding_box()
        label = control.locator(".widget-label").inner_text()
        assert left <= box["x"] and box["x"] + box["width"] <= right + 1, (
            f"{name}: control {label!r} sticks out of the notebook panel: {box} vs {panel}"
        )
        cut = control.locator(".widget-label").evaluate("el => el.scrollWidth > el.clientWidth")
        assert not cut, f"{name}: label {label!r} is cut"
        if "widget-slider" in control.get_attribute("class"):
            track = control.locator(".slider-container").bounding_box()
            assert track["width"] >= MIN_TRACK_PX, (
                f"{name}: slider {label!r} track is {track['width']:.0f} px wide"
            )
    for img in widget.locator("img.widget-image").all():
        box = img.bounding_box()
        assert box["x"] + box["width"] <= right + 1, f"{name}: a figure sticks out"
        natural, shown = img.evaluate("el => [el.naturalWidth, el.clientWidth]")
        assert shown >= natural - 1, f"{name}: a figure is shrunk from {natural} to {shown} px"


def resize(page, size: dict) -> None:
    """Set the window size and wait until JupyterLab has laid the notebook out again."""
    page.set_viewport_size(size)
    page.wait_for_function(
        """(w) => {
            const panel = document.querySelector('.jp-NotebookPanel-notebook');
            return panel && Math.abs(panel.getBoundingClientRect().right - w) < 80;
        }""",
        arg=size["width"],
        timeout=TIMEOUT_MS,
    )
    page.wait_for_timeout(300)


def shoot(page, widget, path: Path) -> None:
    """Screenshot of the widget at the page's width (the page made tall enough to hold it).

    The blank margin right of and below the widget is cut off and the picture quantised to 64
    colours (PNGs of 20-80 KB for the README).
    """
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": 1600})
    widget.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    shot = Image.open(io.BytesIO(widget.screenshot())).convert("RGB")
    page.set_viewport_size({"width": width, "height": 768})
    blank = Image.new("RGB", shot.size, shot.getpixel((shot.width - 1, shot.height - 1)))
    _, _, right, bottom = ImageChops.difference(shot, blank).getbbox()
    shot = shot.crop((0, 0, min(shot.width, right + 8), min(shot.height, bottom + 8)))
    shot.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


# ----------------------------------------------------------------------------- the package's answers


def parse_pool_readout(text: str):
    """(features H x W, box, (h, w), scale, pooled rows) from the RoI widget's printed output."""
    head, *rows = text.strip().splitlines()
    m = re.search(
        r"demo_feature_map\((\d+), (\d+)\).*\[\[0, ([-\d.]+), ([-\d.]+), ([-\d.]+), ([-\d.]+)\]\]\), "
        r"\((\d+), (\d+)\), 1/(\d+)\)",
        head,
    )
    assert m, head
    H, W = int(m[1]), int(m[2])
    box = [float(m[k]) for k in range(3, 7)]
    return (
        (H, W),
        box,
        (int(m[7]), int(m[8])),
        1 / int(m[9]),
        [[float(v) for v in r.split()] for r in rows],
    )


def check_pool_readout(widget) -> tuple:
    """The printed output is roi_pool's on the inputs the controls show."""
    (H, W), box, size, scale, rows = parse_pool_readout(readout(widget))
    for label, value in zip(("x1 (px)", "y1 (px)", "x2 (px)", "y2 (px)"), box, strict=True):
        assert slider_value(widget, label) == value
    assert (slider_value(widget, "h (bins)"), slider_value(widget, "w (bins)")) == size
    assert (H, W) == feature_size(IMAGE_SIZE, scale)
    features = demo_feature_map(H, W)[None, None]
    expected = roi_pool(features, torch.tensor([[0.0, *box]]), size, scale)[0, 0]
    assert rows == expected.tolist()
    assert (
        rows
        == torchvision.ops.roi_pool(features, torch.tensor([[0.0, *box]]), size, scale)[
            0, 0
        ].tolist()
    )
    return box, size, scale


BOXES_DEMO = [(24, 20, 100, 76), (60, 30, 150, 110), (8, 8, 40, 40)]  # notebook 04's boxes_demo


def check_backward_readout(widget) -> None:
    text = readout(widget)
    m = re.search(
        r"output \(RoI (\d+), bin (\d+),(\d+)\) of RoI \d+ = \(([-\d., ]+)\) px, "
        r"output_size \((\d+), (\d+)\): value (\d+); its gradient goes to cell \(y=(\d+), x=(\d+)\)",
        text,
    )
    assert m, text
    k, i, j = int(m[1]), int(m[2]), int(m[3])
    box = tuple(float(v) for v in m[4].split(", "))
    assert box == BOXES_DEMO[k]
    assert (slider_value(widget, "RoI"), slider_value(widget, "bin row")) == (k, i)
    assert slider_value(widget, "bin col") == j and slider_value(widget, "h = w") == int(m[5])
    view = roi_pool_view(demo_feature_map(16, 20), box, (int(m[5]), int(m[6])), 1 / 8)
    assert float(m[7]) == view.pooled[i, j]
    assert (int(m[8]), int(m[9])) == tuple(view.argmax[i, j])


# ----------------------------------------------------------------------------- the tests


def test_notebook_04_roi_widgets(lab, page, screenshots):
    lab.open(page, "04_roi_pooling.ipynb")
    run_all(page)
    pool = widget_output(page, "x1 (px)")
    back = widget_output(page, "bin row")
    check_layout(page, pool, "RoI pooling widget at 1024 px")
    check_layout(page, back, "gradient widget at 1024 px")
    shoot(page, pool, screenshots / "roi_pool_widget_1024.png")
    resize(page, DESKTOP)
    check_layout(page, pool, "RoI pooling widget at 1920 px")
    check_layout(page, back, "gradient widget at 1920 px")
    shoot(page, pool, screenshots / "roi_pool_widget_1920.png")
    shoot(page, back, screenshots / "roi_backward_widget_1920.png")

    check_pool_readout(pool)
    for label in ("x1 (px)", "y1 (px)", "x2 (px)", "y2 (px)"):
        before, after = press(pool, label)
        assert abs(after - before) == 8  # one feature cell at spatial_scale 1/8
        check_pool_readout(pool)
    for label in ("h (bins)", "w (bins)"):
        before, after = press(pool, label)
        assert abs(after - before) == 1
        check_pool_readout(pool)
    wait_for_new_readout(pool, lambda: pool.locator(".widget-dropdown select").select_option("1/4"))
    assert check_pool_readout(pool)[2] == 1 / 4
    before, after = press(pool, "x1 (px)")
    assert abs(after - before) == 4  # the step follows the stride
    check_pool_readout(pool)

    check_backward_readout(back)
    for label in ("RoI", "bin row", "bin col"):
        press(back, label)
        check_backward_readout(back)
    press(back, "h = w", "ArrowLeft")  # 3 -> 2: the bin sliders end at the new last bin
    press(back, "h = w", "ArrowLeft")  # 2 -> 1
    for label in ("bin row", "bin col"):
        knob = slider(back, label).locator(".noUi-handle")
        assert float(knob.get_attribute("aria-valuemax")) == 0
        assert slider_value(back, label) == 0
    check_backward_readout(back)
    press(back, "h = w")  # 1 -> 2
    check_backward_readout(back)


def test_notebook_00_iou_widget(lab, page, screenshots):
    lab.open(page, "00_data_and_boxes.ipynb")
    run_all(page)
    iou = widget_output(page, "B x1")
    check_layout(page, iou, "IoU widget at 1024 px")
    shoot(page, iou, screenshots / "iou_widget_1024.png")
    resize(page, DESKTOP)
    check_layout(page, iou, "IoU widget at 1920 px")
    assert "A = (20, 20, 50, 50)\nB = (30, 20, 60, 50): IoU 0.500" in readout(iou)

    def check():
        m = re.search(r"A = \(([\d, ]+)\)\nB = \(([\d, ]+)\): IoU ([\d.]+)", readout(iou))
        a = torch.tensor([[float(v) for v in m[1].split(", ")]])
        b = torch.tensor([[float(v) for v in m[2].split(", ")]])
        x, y = slider_value(iou, "B x1"), slider_value(iou, "B y1")
        w, h = slider_value(iou, "B width"), slider_value(iou, "B height")
        assert b[0].tolist() == [x, y, x + w, y + h]
        assert float(m[3]) == pytest.approx(float(torchvision.ops.box_iou(a, b)), abs=5e-4)
        for corner, size in (("B x1", "B width"), ("B y1", "B height")):  # B stays on the canvas
            for label, other in ((corner, size), (size, corner)):
                top = slider(iou, label).locator(".noUi-handle").get_attribute("aria-valuemax")
                assert float(top) == 100 - slider_value(iou, other)

    check()
    for label in ("B x1", "B y1", "B width", "B height"):
        press(iou, label)
        check()


SAVED = """
import nbformat, nbclient
nb = nbformat.v4.new_notebook()
nb.metadata.kernelspec = {{"name": "python3", "display_name": "Python 3", "language": "python"}}
nb.cells = [nbformat.v4.new_code_cell(s) for s in (
    "from fastrcnn_lite.teaching.box_widgets import iou_widget\\niou_widget()",
    "from fastrcnn_lite.teaching.roi_widgets import roi_pool_widget\\nroi_pool_widget()",
    "from fastrcnn_lite.progress import tqdm\\nfor _ in tqdm(range(4), desc='train'):\\n    pass",
)]
nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
nbformat.write(nb, {path!r})
"""


def test_saved_notebook_reads_well_before_it_runs(lab, page):
    path = lab.root / "saved.ipynb"
    script = SAVED.format(path=str(path))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, cwd=lab.root)
    lab.open(page, "saved.ipynb")
    outputs = page.locator(".jp-Cell .jp-OutputArea-output")
    outputs.first.wait_for()
    pictures = page.locator(".jp-OutputArea-output img")
    assert pictures.count() == 2  # the IoU and the RoI widgets' pictures
    for img in pictures.all():
        assert img.evaluate("el => el.complete && el.naturalWidth > 400")
    text = page.locator(".jp-Notebook").inner_text()
    assert "children=" not in text and "Error displaying widget" not in text
    assert re.search(r"train: 100% 4/4 in \d\d:\d\d", text)
    first = page.locator(".jp-CodeCell").first
    first.locator(".jp-InputPrompt").click()  # select it (a key press can be lost while loading)
    page.locator(".jp-CodeCell.jp-mod-selected").first.wait_for()
    assert "jp-mod-selected" in first.get_attribute("class")
    menu(page, "Run", "Run Selected Cells?")  # run it: the live widget replaces the picture
    widget_output(page, "B x1")
    assert (
        page.locator(".jp-CodeCell")
        .first.locator(".jp-OutputArea-output img:not(.widget-image)")
        .count()
        == 0
    )


SUMMARY = """
import json, sys
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
sys.path.insert(0, {tools!r})
import run_course
reports = Path({reports!r})
run_course.REPORTS = reports
notebooks = reports.parent / "nbs"
notebooks.mkdir()
results = []
for name, title in (("00_tiny", "00 · Tiny"), ("01_small", "01 · Small")):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# " + title), nbformat.v4.new_code_cell("1 + 1")]
    nbformat.write(nb, notebooks / (name + ".ipynb"))
    results.append(run_course.run_one(notebooks / (name + ".ipynb")))
rows = [{{"system": s, "mAP": m}} for s, m in (("R-CNN", 0.61), ("SPPnet", 0.6), ("Fast R-CNN", 0.65))]
(reports / "comparison.json").write_text(json.dumps({{"rows": rows, "note": "a test run"}}))
fig, ax = plt.subplots(figsize=(3, 2))
ax.bar([r["system"] for r in rows], [r["mAP"] for r in rows])
fig.savefig(reports / "comparison.png")
print(run_course.write_summary(results))
"""


def test_course_summary_page(page, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    script = SUMMARY.format(tools=str(ROOT / "tools"), reports=str(reports))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, cwd=tmp_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(reports))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        page.goto(f"{base}/index.html")
        links = page.locator("table a")
        assert links.all_inner_texts() == ["00 · Tiny", "01 · Small"]
        for link in links.all():
            response = page.request.get(f"{base}/{link.get_attribute('href')}")
            assert response.ok and link.inner_text() in response.text()
        tables = page.locator("table")
        assert tables.count() == 2
        cells = [r.locator("td").all_inner_texts() for r in tables.nth(1).locator("tr").all()[1:]]
        assert cells == [["R-CNN", "0.61"], ["SPPnet", "0.6"], ["Fast R-CNN", "0.65"]]
        chart = page.locator("img[src='comparison.png']")
        assert chart.evaluate("el => el.complete && el.naturalWidth > 0")
    finally:
        server.shutdown()
        server.server_close()
