"""How the course's widgets show: figures as images updated in place, and a saved-notebook picture.

Data-flow stage: none (teaching aid shared by ``box_widgets.py`` (notebook 00) and
``roi_widgets.py`` (notebook 04)).

A widget needs a running kernel; a saved notebook opened without one (JupyterLab before Run, the
HTML report, GitHub) would show only a line of text such as ``VBox(children=(IntSlider(...``.
:class:`WidgetWithPicture` is the widgets' outer box: when displayed it sends the live widget
view *and* a PNG of its first view with one line saying to run the cell. JupyterLab shows the live
widget for outputs it trusts (the cell you just ran) and the picture otherwise (a notebook opened
from disk).

Figures are drawn with matplotlib's Agg canvas straight to PNG bytes (:func:`figure_png`) and
shown in an ``ipywidgets.Image``: a slider move replaces the picture in place, with no output
clearing, no flicker and no pyplot figure manager.
"""

from __future__ import annotations

import base64
import html
import io

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

__all__ = ["RUN_NOTE", "figure_png", "new_figure", "picture", "readout_html", "WidgetWithPicture"]

RUN_NOTE = "Static picture of the first view: run this cell to move the sliders."


def new_figure(width: float, height: float, dpi: int = 90) -> Figure:
    """A Figure on its own Agg canvas (never registered with pyplot, never shown inline).

    Notebook 00 (the IoU widget) and notebook 04 (the RoI pooling widgets).
    """
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, at its own size and dpi.

    Notebook 00 (the IoU widget) and notebook 04 (the RoI pooling widgets).

    One Agg draw and a fast PNG encoding (``savefig`` would draw twice and compress hard: about
    twice as slow, and a slider step should take well under half a second on two busy cores).
    """
    fig.canvas.draw()
    rgba = Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba())
    buffer = io.BytesIO()
    rgba.convert("RGB").save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def readout_html(text: str) -> str:
    """A widget's printed output for an ``ipywidgets.HTML``: monospace, line breaks kept.

    Notebook 00 (the IoU widget) and notebook 04 (the RoI pooling widgets).

    On a narrow page (1024 px with the sidebar open) a long line wraps at a space, never inside
    a name such as ``torch.tensor``.
    """
    style = "white-space: pre-wrap; word-break: normal; overflow-wrap: normal"
    return f"<pre class='frl-readout' style='{style}'>{html.escape(text)}</pre>"


def picture(pngs: list[bytes], lines: list[str]) -> bytes:
    """PNGs side by side under a few lines of text, as one PNG (the saved-notebook picture).

    Notebook 00 (the IoU widget) and notebook 04 (the RoI pooling widgets).
    """
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    font = ImageFont.load_default(size=14)
    line_h = 20
    top = 8 + line_h * len(lines)
    width = max(sum(im.width for im in images), 620)
    canvas = Image.new("RGB", (width, top + max(im.height for im in images)), "white")
    draw = ImageDraw.Draw(canvas)
    for n, line in enumerate(lines):
        draw.text((8, 4 + n * line_h), line, fill=(40, 40, 40) if n else (180, 60, 0), font=font)
    x = 0
    for im in images:
        canvas.paste(im, (x, top))
        x += im.width
    buffer = io.BytesIO()  # 64 colours: about a third of the bytes in the committed notebook
    canvas.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        buffer, format="png", optimize=True
    )
    return buffer.getvalue()


class WidgetWithPicture(widgets.VBox):
    """A VBox whose display also carries a static PNG of its first view and a one-line note.

    Notebook 00 (the IoU widget) and notebook 04 (the RoI pooling widgets).

    Args:
        children (list of widgets): the live widget.
        png (bytes): the picture shown where the live view cannot be (no kernel, untrusted).
    """

    def __init__(self, children, png: bytes, **kwargs):
        super().__init__(children, **kwargs)
        self.picture_png = png

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["image/png"] = base64.b64encode(self.picture_png).decode("ascii")
        bundle["text/plain"] = RUN_NOTE  # never the widget's VBox(children=...) repr
        return bundle
