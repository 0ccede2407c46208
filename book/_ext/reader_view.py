"""Sphinx extension: what readers see on a desktop and a phone, for every page the book will ever have.

* Printed outputs wrap inside the column (a long line is never cut off mid-sentence), output tables and
  explorables scroll inside the column instead of widening the page, and figures never overflow it
  (``static/reader_view.css``).
* A link written in a notebook (or in a ``text/markdown`` output such as a ``markdown_table``) to another
  notebook, ``[Adam](07_adam.ipynb#bias-correction)``, that MyST left as a plain URL is pointed at that
  notebook's page on the site, ``07_adam.html#bias-correction``; a link to an ``.ipynb`` that is not a page
  of the book is a warning (an error under ``-W``).
"""

import posixpath
from pathlib import Path

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def _is_relative(uri):
    return "://" not in uri and not uri.startswith(("mailto:", "#", "/", "data:"))


def link_notebooks(app, doctree, docname):
    for ref in doctree.findall(nodes.reference):
        uri = ref.get("refuri", "")
        path, _, anchor = uri.partition("#")
        if not path.endswith(".ipynb") or not _is_relative(uri):
            continue
        target = posixpath.normpath(posixpath.join(posixpath.dirname(docname), path[: -len(".ipynb")]))
        if target not in app.env.all_docs:
            logger.warning(f"link to {uri}, which is not a page of the book", location=ref)
            continue
        ref["refuri"] = app.builder.get_relative_uri(docname, target) + (f"#{anchor}" if anchor else "")


def setup(app):
    app.connect("config-inited", lambda app, config: config.html_static_path.append(str(STATIC)))
    app.add_css_file("reader_view.css")
    app.connect("doctree-resolved", link_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
