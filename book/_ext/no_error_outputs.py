"""Sphinx extension: a notebook committed with an error in its outputs fails the build (under -W).

The book shows committed outputs (strict nbval proves them real); this makes sure none of them is a
traceback, so that "the build passes although a cell failed" cannot happen.
"""

import json
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def check(app, env, docnames):
    for docname in docnames:
        path = Path(env.doc2path(docname))
        if path.suffix != ".ipynb":
            continue
        cells = json.loads(path.read_text()).get("cells", [])
        for number, cell in enumerate(cells, 1):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    logger.warning(f"cell {number} of {docname}.ipynb was committed with an error: "
                                   f"{output.get('ename')}: {output.get('evalue')}", location=docname)


def setup(app):
    app.connect("env-before-read-docs", check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
