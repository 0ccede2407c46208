"""Sphinx extension: a figure's alt text says what it shows, not where its file is.

A notebook's figures are PNGs written by ``optbook.figures.plots.figure_png``, which puts a description
of the figure (titles, what each panel plots against what, the legend) into the PNG's ``Description``
text chunk. Here every image of a cell output gets that description as its alt text; an image that has
none (a PNG made another way) gets "Figure from the code cell above" rather than its file path.
"""

from pathlib import Path

from docutils import nodes
from PIL import Image

FALLBACK = "Figure from the code cell above"


def _file(app, uri):
    for path in (Path(uri), Path(app.srcdir) / uri.lstrip("/")):
        if path.is_file():
            return path
    return None


def describe_images(app, doctree):
    for image in doctree.findall(nodes.image):
        uri = image.get("uri", "")
        alt = image.get("alt", "")
        if alt and alt != uri and not alt.endswith((".png", ".jpg", ".svg")):
            continue  # the author wrote one
        path = _file(app, uri)
        description = ""
        if path is not None and path.suffix == ".png":
            with Image.open(path) as png:
                description = str(png.info.get("Description", "")).strip()
        if description or "jupyter_execute" in uri or path is None or "jupyter_execute" in str(path):
            image["alt"] = description or FALLBACK


def setup(app):
    app.connect("doctree-read", describe_images)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
