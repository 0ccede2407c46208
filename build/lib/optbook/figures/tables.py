"""Tables in notebook outputs that the book renders as tables (and Jupyter and Colab too).

``markdown_table`` returns an ``IPython.display.Markdown`` object: the book renders ``text/markdown``
outputs with the MyST parser (``nb_render_markdown_format: myst`` in ``_config.yml``), so pipes become a
table and ``$...$`` becomes math. A cell shows it by ending with it or with ``display(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from IPython.display import Markdown

__all__ = ["markdown_table"]


def _cell(value) -> str:
    text = value if isinstance(value, str) else (f"{value:.4g}" if isinstance(value, float) else str(value))
    return text.replace("|", r"\|").replace("\n", " ")


def markdown_table(rows: Sequence, columns: Sequence) -> Markdown:
    """A table with one row per item of ``rows``.

    ``columns`` is either a list of titles (then each row is a sequence of cells, in that order) or a list
    of ``(key, title)`` pairs (then each row is a mapping, read by key). Floats are shown with 4
    significant digits; format them yourself for anything else.
    """
    columns = list(columns)
    keyed = bool(columns) and all(isinstance(c, tuple) and len(c) == 2 for c in columns)
    titles = [title for _, title in columns] if keyed else [str(c) for c in columns]
    lines = ["| " + " | ".join(_cell(t) for t in titles) + " |", "|" + "|".join("---" for _ in titles) + "|"]
    for k, row in enumerate(rows):
        if keyed:
            if not isinstance(row, Mapping):
                raise ValueError(f"row {k} must be a mapping (the columns are (key, title) pairs), got {row!r}")
            cells = [row[key] for key, _ in columns]
        else:
            cells = list(row)
        if len(cells) != len(titles):
            raise ValueError(f"row {k} has {len(cells)} cells but there are {len(titles)} columns")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return Markdown("\n".join(lines))
