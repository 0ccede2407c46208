"""Notebook figures: twice the pixels they are shown at, and a description that becomes their alt text."""

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from optbook.figures import plots  # noqa: E402


def figure():
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3))
    a.plot([1, 2], label="Adam")
    a.plot([2, 1], label="SGD")
    a.set(title="Loss of two hikers", xlabel="step", ylabel="loss $f(x)$")
    a.legend()
    b.plot([1, 2])
    fig.suptitle("Two panels")
    return fig


def test_describe_says_what_the_figure_shows():
    fig = figure()
    text = plots.describe(fig)
    plt.close(fig)
    assert text.startswith("A figure with 2 panels. Two panels.")
    assert "Loss of two hikers: loss f(x) against step, for Adam, SGD." in text
    assert "$" not in text


def test_figure_png_is_retina_and_carries_the_description():
    fig = figure()
    data, metadata = plots.figure_png(fig)
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert abs(image.width - 2 * metadata["width"]) <= 1  # shown at half its pixels
    assert image.info["Description"] == plots.describe(fig)
    plt.close(fig)


def test_alt_text_extension_reads_the_description(tmp_path):
    import sys

    from conftest import ROOT
    from docutils import nodes

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import figure_alt

    fig = figure()
    data, _ = plots.figure_png(fig)
    plt.close(fig)
    (tmp_path / "jupyter_execute").mkdir()
    png = tmp_path / "jupyter_execute" / "a.png"
    png.write_bytes(base64.b64decode(data))
    plain = tmp_path / "jupyter_execute" / "b.png"
    Image.new("RGB", (4, 4)).save(plain)

    class App:
        srcdir = str(tmp_path)

    doc = nodes.section()
    doc += nodes.image(uri=str(png), alt=str(png))
    doc += nodes.image(uri=str(plain))
    doc += nodes.image(uri="x.png", alt="What the author wrote")
    figure_alt.describe_images(App(), doc)
    alts = [image["alt"] for image in doc.findall(nodes.image)]
    assert alts[0].startswith("A figure with 2 panels.")
    assert alts[1] == figure_alt.FALLBACK
    assert alts[2] == "What the author wrote"
