"""Sphinx extension: the book shows committed outputs, so check them before building (fails under -W).

The book does not execute notebooks while building (strict nbval re-runs every one of them against its
committed outputs instead). This makes sure what it shows is real: a notebook with a code cell that was
never executed, or with an error among its outputs, is a warning, and with ``-W`` a failed build.
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
            if cell.get("cell_type") != "code" or not "".join(cell.get("source", "")).strip():
                continue
            if cell.get("execution_count") is None:
                logger.warning(f"cell {number} of {docname}.ipynb was never executed: run `make execute`",
                               location=docname)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    logger.warning(f"cell {number} of {docname}.ipynb was committed with an error: "
                                   f"{output.get('ename')}: {output.get('evalue')}", location=docname)


def setup(app):
    app.connect("env-before-read-docs", check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
