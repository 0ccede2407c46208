"""The book build fails on a failing cell, whether it was committed with an error or runs into one."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # each test builds a book or a virtual environment

JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")


def tiny_book(tmp_path, notebook):
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "_ext")
    (tmp_path / "_config.yml").write_text(
        "title: t\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n"
        "sphinx:\n  local_extensions:\n    committed_outputs: _ext\n    dedupe_scripts: _ext\n"
    )
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: page\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    nbformat.write(notebook, tmp_path / "page.ipynb")
    return subprocess.run(
        [str(JUPYTER_BOOK), "build", str(tmp_path), "--warningiserror", "--keep-going"], capture_output=True, text=True
    )


def notebook_with(cell):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Page"), cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed in this environment")
def test_committed_error_output_fails_the_build(tmp_path):
    cell = nbformat.v4.new_code_cell("1 / 0", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    result = tiny_book(tmp_path, notebook_with(cell))
    assert result.returncode != 0
    assert "committed with an error" in result.stdout + result.stderr


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed in this environment")
def test_unexecuted_notebook_fails_the_build(tmp_path):
    result = tiny_book(tmp_path, notebook_with(nbformat.v4.new_code_cell("raise RuntimeError('boom')")))
    assert result.returncode != 0
    assert "never executed" in result.stdout + result.stderr


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed in this environment")
def test_healthy_notebook_builds(tmp_path):
    cell = nbformat.v4.new_code_cell("print(6 * 7)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    result = tiny_book(tmp_path, notebook_with(cell))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed in this environment")
def test_markdown_outputs_render_as_tables_with_math_and_page_links(tmp_path):
    """A ``markdown_table`` output, under the book's own setting, is a table with math, and its link to a
    notebook points at that notebook's page (the book's _config.yml and book/_ext/reader_view.py)."""
    import yaml

    fmt = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["nb_render_markdown_format"]
    table = "| method | update |\n|---|---|\n| [the page](page.ipynb) | $\\alpha_t$ |"
    cell = nbformat.v4.new_code_cell("markdown_table(...)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": table, "text/plain": "<md>"})]
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "_ext")
    nbformat.write(notebook_with(cell), tmp_path / "page.ipynb")
    (tmp_path / "_config.yml").write_text(
        "title: t\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n"
        "sphinx:\n  local_extensions:\n    reader_view: _ext\n"
        f"  config:\n    nb_render_markdown_format: {fmt}\n"
    )
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: page\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    result = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(tmp_path), "--warningiserror", "--keep-going"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    page = (tmp_path / "_build" / "html" / "page.html").read_text()
    assert "<table" in page and "|---|" not in page
    assert 'class="math notranslate nohighlight">\\(\\alpha_t\\)' in page
    assert 'href="#"' in page or 'href="page.html' in page or 'href=""' in page
    assert 'href="page.ipynb"' not in page
