"""Sphinx extension: drop scripts that a page would include twice.

sphinx-thebe (loaded by Jupyter Book) adds its inline configuration script twice per page, which
raises "Identifier 'THEBE_JS_URL' has already been declared" in the browser. Keep the first copy.
"""


def _key(script):
    return getattr(script, "filename", None) or "", tuple(sorted(getattr(script, "attributes", {}).items()))


def dedupe(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
